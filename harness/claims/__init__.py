"""Claims the harness reproduces: one file per claim, holding its statement, its experiment
grid per budget (smoke, quick, full) as data, and the analysis that computes its verdict.

    python -m harness reproduce horizon --budget quick
    python -m harness report --claim horizon
"""
from __future__ import annotations

from harness.claims.base import BUDGETS, MISSION_CELLS, Claim, ClaimReport, Context, Grid, Planned, Verdict
from harness.claims.plans import Ladder, Tuning
from harness.claims.registry import REGISTRY, register

from harness.claims import params, horizon, imdb, phased, skip, context  # noqa: E402,F401  (one line per claim)

__all__ = ["BUDGETS", "MISSION_CELLS", "Claim", "ClaimReport", "Context", "Grid", "Ladder", "Planned", "Tuning",
           "Verdict", "available", "get", "register"]


def available() -> list[str]:
    return REGISTRY.names()


def get(name: str, cells: tuple[str, ...] | None = None) -> Claim:
    """The claim registered as `name`, studying its pinned cells (or `cells` instead)."""
    return REGISTRY.get(name)(cells)

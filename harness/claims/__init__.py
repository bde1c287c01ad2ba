"""Claims the harness reproduces: one file per claim, holding its statement, its experiment
grid per budget (smoke, quick, full) as data, and the analysis that computes its verdict.

    python -m harness reproduce horizon --budget quick
    python -m harness report --claim horizon
"""
from __future__ import annotations

from harness.claims.base import BUDGETS, Claim, ClaimReport, Context, Grid, Planned
from harness.claims.registry import REGISTRY, register

from harness.claims import params, horizon, imdb, phased, skip  # noqa: E402,F401  (one line per claim)

__all__ = ["BUDGETS", "Claim", "ClaimReport", "Context", "Grid", "Planned", "available", "get"]


def available() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> Claim:
    return REGISTRY.get(name)()

"""Turn a claim's runs (the neutral run table of harness.tracking) into files: tables (CSV + Markdown), figures (PNG + SVG) and a
README that states the protocol, the budget, the machine, the commit, the command and the
computed verdict; then the HTML dashboard over all claims."""
from __future__ import annotations

import dataclasses
import datetime
import json
import tempfile
from pathlib import Path

import pandas as pd

from harness.claims import BUDGETS, Claim, ClaimReport, Context
from harness.tracking import Outcome, open_runs


@dataclasses.dataclass
class Written:
    claim: Claim
    report: ClaimReport
    meta: dict
    directory: Path
    figures: dict[str, Path]  # name -> PNG
    budget_lines: list[str]  # the budget's grid, as Markdown list items


def select_runs(runs: pd.DataFrame, budget: str | None) -> tuple[pd.DataFrame, str | None]:
    """From a claim's neutral run table: the runs of one budget (default: the largest budget
    with runs) that reached a result (finished or diverged; a crash or a kill is not one), the
    newest per configuration fingerprint."""
    if runs.empty or "claim_budget" not in runs:
        return pd.DataFrame(), None
    runs = runs[runs["outcome"].map(lambda o: Outcome(o).is_result)]
    if "fingerprint" in runs:  # one result per configuration: the newest
        runs = runs.sort_values("started").drop_duplicates("fingerprint", keep="last")
    present = [b for b in BUDGETS if b in set(runs["claim_budget"])]
    budget = budget or (present[-1] if present else None)
    return runs[runs["claim_budget"] == budget].reset_index(drop=True), budget


def analyse(claim: Claim, uri: str, budget: str | None, workdir: Path) -> tuple[ClaimReport, dict] | None:
    store = open_runs(uri)
    runs, budget = select_runs(store.table(claim.experiment), budget)
    if runs.empty:
        return None
    context = Context(store.uri, store.history, lambda run_id, path: store.artifact(run_id, path, workdir / run_id))
    report = claim.analyse(runs, context)
    tags = lambda key: sorted({str(v) for v in runs.get(key, pd.Series(dtype=str)).dropna()})  # noqa: E731
    meta = {"budget": budget, "runs": len(runs), "devices": tags("device"), "hosts": tags("host"),
            "machines": tags("machine"),
            "commits": tags("harness_commit"), "commands": tags("claim_command"),
            "first": str(runs["started"].min())[:19], "last": str(runs["ended"].max())[:19],
            "failed": int((runs["outcome"] == Outcome.DIVERGED).sum()),
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    return report, meta


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def write_claim(claim: Claim, report: ClaimReport, meta: dict, out: Path) -> Written:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.csv")) + list(out.glob("*.md")) + list(out.glob("*.png")) + list(out.glob("*.svg")):
        old.unlink()  # regenerated outputs only: nothing stale survives a re-run
    for name, table in report.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(markdown(table) + "\n")
    figures = {}
    for name, figure in report.figures.items():
        figure.savefig(out / f"{name}.png", dpi=130)
        figure.savefig(out / f"{name}.svg")
        plt.close(figure)
        figures[name] = out / f"{name}.png"
    lines = [f"# {claim.title}", "", f"**Claim.** {claim.statement}", "", f"**Source.** {claim.sources}", "",
             f"## Verdict: {report.verdict}", "", report.verdict_detail, "",
             *[f"- {note}" for note in report.notes], *([""] if report.notes else []),
             "## Protocol", "", claim.protocol, "",
             f"## Budget: `{meta['budget']}`", "", *claim.budget_lines(meta["budget"]), "",
             "## Provenance", "",
             f"- runs: {meta['runs']} ({meta['failed']} diverged), {meta['first']} to {meta['last']} (UTC)",
             f"- device: {', '.join(meta['devices']) or 'n/a'}; host: {', '.join(meta['hosts']) or 'n/a'}",
             *[f"- machine: {m}" for m in meta["machines"]],
             f"- harness commit: {', '.join(meta['commits']) or 'n/a'}",
             *[f"- command: `{c}`" for c in meta["commands"]],
             f"- report: `python -m harness report --claim {claim.name} --budget {meta['budget']}`, "
             f"generated {meta['generated']}", ""]
    for name in report.tables:
        lines += [f"## Table: {name.replace('_', ' ')}", "", markdown(report.tables[name]), ""]
    for name in figures:
        lines += [f"![{name}]({name}.png)", ""]
    (out / "README.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps({
        "claim": claim.name, "title": claim.title, "statement": claim.statement, "verdict": report.verdict,
        "detail": report.verdict_detail, "budget": meta["budget"], "runs": meta["runs"],
        "devices": meta["devices"]}, indent=1) + "\n")
    return Written(claim, report, meta, out, figures, claim.budget_lines(meta["budget"]))


def report_all(claims: list[Claim], uri: str, out: Path, dashboards: Path | None,
               budget: str | None = None) -> list[Written]:
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for claim in claims:
            found = analyse(claim, uri, budget, Path(tmp))
            if found is None:
                continue
            written.append(write_claim(claim, *found, out / claim.name))
    if dashboards is not None and written:
        from harness.report.dashboard import write_dashboard

        write_dashboard(written, dashboards, out)
    return written

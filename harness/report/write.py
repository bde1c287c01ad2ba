"""Turn a claim's runs (the neutral run table of harness.tracking) into files: tables (CSV + Markdown), figures (PNG + SVG) and a
README that states the protocol, the budget, the machine, the commit, the command and the
computed verdict, and the runs it was computed from (harness.report.inputs); then the HTML
dashboard over all claims. The runs come from a store or from the files of an earlier report
(harness.report.sources); a report from a store is also logged as a run (harness.report.tracked).

A report never silently replaces one made with a larger budget (BUDGETS: smoke < quick <
full): see `place`."""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
import tempfile
from pathlib import Path

import pandas as pd

from harness.claims import BUDGETS, Claim, ClaimReport, Context
from harness.report.inputs import FILES, Inputs
from harness.report.sources import FolderSource, StoreSource
from harness.tracking import Outcome, neutral_table


@dataclasses.dataclass
class Written:
    claim: Claim
    report: ClaimReport
    meta: dict
    directory: Path
    figures: dict[str, Path]  # name -> PNG
    budget_lines: list[str]  # the budget's grid, as Markdown list items


@dataclasses.dataclass
class Placement:
    """Where one claim's report goes: its `budget` into `root / claim` (budget None: nothing
    is written), and `note`, one line saying where and why when that is not `out / claim`."""

    budget: str | None
    root: Path
    note: str = ""


def committed_budget(folder: Path) -> str | None:
    """The budget of the report already in `folder`: its summary.json's, else its README's
    `## Budget:` line; None when there is none (or it names no budget of BUDGETS)."""
    try:
        budget = json.loads((folder / "summary.json").read_text()).get("budget")
    except (OSError, ValueError, AttributeError):
        try:
            match = re.search(r"^## Budget: `(\w+)`", (folder / "README.md").read_text(), re.MULTILINE)
        except OSError:
            match = None
        budget = match.group(1) if match else None
    return budget if budget in BUDGETS else None


def place(name: str, present: list[str], committed: str | None, asked: str | None, out: Path,
          replace: bool = False) -> Placement:
    """Where claim `name`'s report goes, from the budgets the store has runs of (`present`,
    smallest first), the budget of the report already in out/<name> (`committed`), the budget
    asked for (None: the default) and `replace` (--force):
    - the default budget is the committed one, else the largest with runs (with `replace`: the
      largest with runs); when the store has no runs of the committed budget nothing is
      written, and the note says so and which command reports the runs it has;
    - a budget smaller than the committed one goes to out/<budget>/<name> (where --out
      out/<budget> would put it), unless `replace`; the note says where and why."""
    rank = BUDGETS.index
    if not asked and committed and not replace and committed not in present:
        if not present:
            return Placement(None, out)
        other = present[-1]
        goes = place(name, present, committed, other, out).root / name
        return Placement(None, out, f"{name}: kept {out / name} (a {committed} report): this store has no "
                         f"{committed} runs of {name}; python -m harness report --claim {name} --budget {other} "
                         f"writes its {other} report to {goes}")
    budget = asked or (None if replace else committed) or (present[-1] if present else None)
    if committed and budget and not replace and rank(budget) < rank(committed):
        root = out / budget
        return Placement(budget, root, f"{name}: {out / name} holds a {committed} report, a larger budget than "
                         f"{budget}: wrote the {budget} report to {root / name} instead (--force replaces it)")
    return Placement(budget, out)


def analyse(claim: Claim, inputs: Inputs, context: Context) -> tuple[ClaimReport, dict]:
    """The claim's report and provenance from its runs (`inputs.records`, one budget)."""
    runs = neutral_table(inputs.records)
    report = claim.analyse(runs, context)
    tags = lambda key: sorted({str(v) for v in runs.get(key, pd.Series(dtype=str)).dropna()})  # noqa: E731
    meta = {"budget": tags("claim_budget")[0], "runs": len(runs), "devices": tags("device"), "hosts": tags("host"),
            "machines": tags("machine"),
            "commits": tags("harness_commit"), "commands": tags("claim_command"),
            "first": str(runs["started"].min())[:19], "last": str(runs["ended"].max())[:19],
            "failed": int((runs["outcome"] == Outcome.DIVERGED).sum()),
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    return report, meta


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def write_claim(claim: Claim, report: ClaimReport, meta: dict, inputs: Inputs, out: Path, root: Path) -> Written:
    """The report's files into `out` (= root/<claim>), with the inputs it was computed from."""
    import matplotlib.pyplot as plt

    clash = sorted(f"{name}.csv" for name in report.tables if f"{name}.csv" in FILES)
    if clash:
        raise ValueError(f"claim {claim.name}: a table may not be named {', '.join(clash)} (the report's inputs)")
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.csv")) + list(out.glob("*.md")) + list(out.glob("*.png")) + list(out.glob("*.svg")):
        old.unlink()  # regenerated outputs only: nothing stale survives a re-run
    inputs.write(out)  # first: a folder that is recomputed in place keeps its runs whatever fails next
    for name, table in report.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(markdown(table) + "\n")
    figures = {}
    for name, figure in report.figures.items():
        figure.savefig(out / f"{name}.png", dpi=130)
        with plt.rc_context({"svg.hashsalt": f"{claim.name}-{name}"}):  # the same figure, the same bytes
            figure.savefig(out / f"{name}.svg", metadata={"Date": None})
        plt.close(figure)
        figures[name] = out / f"{name}.png"
    read = ", beside it what the analysis read of them" if inputs.histories or inputs.artifacts else ""
    where = "" if root == Path("results") else f" {root.as_posix()}"
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
             f"generated {meta['generated']}",
             f"- recompute: `runs.csv` holds one row per run used (fingerprint, configuration, metrics, outcome, "
             f"provenance){read}; `python -m harness report --from-results{where} --claim {claim.name}` recomputes "
             f"this report from this folder, with no store", ""]
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


@dataclasses.dataclass
class Reported:
    written: list[Written]
    indexes: list[Path]  # the dashboards' index pages written
    notes: list[str]  # one line per claim whose report went elsewhere than asked, or was kept


def report_all(claims: list[Claim], uri: str, out: Path, dashboards: Path | None,
               budget: str | None = None, replace: bool = False, source: Path | None = None) -> Reported:
    """Each claim's report into `out`, placed by `place`; the HTML of the reports written into
    `out` goes to `dashboards`, that of reports moved to out/<budget>/ to out/<budget>/dashboards
    (None: no HTML). The runs come from the store at `uri` (each report then also logged as a
    report run there), or, given `source`, from the claim folders under it (no store)."""
    runs = StoreSource(uri) if source is None else FolderSource(source)
    groups: dict[Path, list[Written]] = {}
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        for claim in claims:
            placed = place(claim.name, runs.budgets(claim), committed_budget(out / claim.name), budget, out, replace)
            found = None if placed.budget is None else runs.inputs(claim, placed.budget, Path(tmp) / claim.name)
            if found is not None:
                inputs, context = found
                written = write_claim(claim, *analyse(claim, inputs, context), inputs, placed.root / claim.name,
                                      placed.root)
                runs.reported(claim, written)
                groups.setdefault(placed.root, []).append(written)
            if placed.note and (found is not None or placed.budget is None):
                notes.append(placed.note)
    indexes = []
    if dashboards is not None:
        from harness.report.dashboard import write_dashboard

        for root, written in groups.items():
            indexes.append(write_dashboard(written, dashboards if root == out else root / "dashboards", root))
    return Reported([w for written in groups.values() for w in written], indexes, runs.notes + notes)

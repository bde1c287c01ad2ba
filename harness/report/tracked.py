"""A claim's report as a run in the claim's own MLflow experiment, beside the runs it rests on.

One report run per claim and budget, tagged `kind=report` (harness.tracking.REPORT_KIND),
`claim`, `claim_budget`, `verdict` and `runs` (how many runs it used). It holds the claim
folder's files as artifacts (README.md, the figures as PNG and SVG, the tables as CSV and
Markdown, runs.csv and what else the analysis read) and every table once more as an MLflow
table (`tables/NAME.json`, shown by the UI's artifact view); its note (`mlflow.note.content`,
the run page's description) gives the verdict and links to the runs. Reporting the same claim
and budget again replaces it: the new run is logged, then the earlier ones are deleted.
"""
from __future__ import annotations

from harness.tracking import REPORT_KIND, Outcome, open_tracker

NOTE_CHARS = 5000  # MLflow keeps a tag value of at most 8,000 characters; the note is one


def log_report_run(store, claim, written) -> str:
    """Log `written` (harness.report.write.Written) into `store` (MLflowRuns) as the report run
    of its claim and budget, replacing earlier ones; the new run's ID."""
    budget = written.meta["budget"]
    tags = {**REPORT_KIND, "claim": claim.name, "claim_budget": budget}
    earlier = [r.run_id for r in store.records(claim.experiment, tags)]
    tracker = open_tracker(store.uri, claim.experiment)
    used = runs_of(written)
    run_id = tracker.start(run_name=f"report-{claim.name}-{budget}", tags={
        **tags, "verdict": str(written.report.verdict), "runs": str(len(used)),
        "mlflow.note.content": note(claim, written, used, tracker.prepare())})
    try:
        tracker.log_artifacts(written.directory)
        for name, table in written.report.tables.items():
            tracker.log_table(table, f"tables/{name}.json")
        tracker.end(Outcome.FINISHED)
    except BaseException:
        tracker.end(Outcome.CRASHED)
        store.delete([run_id])
        raise
    store.delete(earlier)
    return run_id


def runs_of(written) -> list[dict[str, str]]:
    """The runs the report used: run_id, name, grid, point and outcome of each (from runs.csv's records)."""
    from harness.report.inputs import RUNS
    from harness.tracking import read_runs_csv

    records = read_runs_csv((written.directory / RUNS).read_text())
    return [{"run_id": r.run_id, "name": r.tags.get("mlflow.runName", r.run_id), "grid": r.tags.get("claim_grid", ""),
             "point": r.tags.get("claim_point", ""), "outcome": r.outcome.value} for r in records]


def note(claim, written, used: list[dict[str, str]], experiment_id: str) -> str:
    """The report run's description (Markdown): the verdict, the files, a linked list of its runs
    (as many as fit in NOTE_CHARS; runs.csv lists them all)."""
    report, meta = written.report, written.meta
    lines = [f"**{claim.title}**", "", f"**Verdict: {report.verdict}** (budget `{meta['budget']}`, {meta['runs']} runs). "
             f"{report.verdict_detail[:2000]}", "",
             "Artifacts: `README.md` (protocol, budget, provenance), the figures (`*.png`), the tables (`tables/`, "
             "and as CSV), `runs.csv` (every run it used, one row each).", "",
             "| run | grid | point | outcome |", "| --- | --- | --- | --- |"]
    size = sum(len(line) + 1 for line in lines)
    for shown, run in enumerate(used):
        row = (f"| [{run['name']}](#/experiments/{experiment_id}/runs/{run['run_id']}) | {run['grid']} | "
               f"{run['point']} | {run['outcome']} |")
        if size + len(row) + 80 > NOTE_CHARS:
            lines.append(f"\n... and {len(used) - shown} more: `runs.csv` lists them all")
            break
        lines.append(row)
        size += len(row) + 1
    return "\n".join(lines)

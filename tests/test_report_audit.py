"""A report can be audited without its store, and seen in MLflow beside its runs. Through the
CLI, on a real SQLite store holding the smoke runs of `params` (no training) and `horizon`
(whose analysis reads the runs' gradient_flow.csv artifacts):
- the report from the store keeps runs.csv (and the artifacts it read); `report
  --from-results` recomputes it with no store, every table byte for byte;
- served by a real `mlflow server`, each claim has one report run (kind=report) with its
  verdict tag, figures and tables as artifacts and links to its runs, however often reported."""
from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request

import pandas as pd
import pytest
from helpers import http_get, mlflow_server, run_cli

from harness.report.sources import select_runs
from harness.tracking import is_report, neutral_table, open_runs, read_runs_csv

CLAIMS = ("params", "horizon")


def files(root) -> dict[str, bytes]:
    """{relative path: bytes} of every file under root but the README and HTML (they name the
    time and the folder they were made in)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "README.md" and p.suffix != ".html"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A working directory whose SQLite store holds the smoke runs of CLAIMS; its URI."""
    work = tmp_path_factory.mktemp("audit")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    for claim in CLAIMS:
        result = run_cli("reproduce", claim, "--budget", "smoke", "--tracking-uri", uri, cwd=work, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    made = run_cli("report", "--budget", "smoke", "--out", "made", "--tracking-uri", uri, *[
        a for c in CLAIMS for a in ("--claim", c)], cwd=work)
    assert made.returncode == 0, made.stderr[-2000:]
    return work, uri


def test_from_results_recomputes_every_table_byte_for_byte_with_no_store(store, tmp_path):
    work, _ = store
    made = files(work / "made")
    assert {f"{c}/runs.csv" for c in CLAIMS} | {"horizon/artifacts/gradient_flow.csv"} <= set(made)
    assert sum(name.endswith(".csv") for name in made) >= 10
    result = run_cli("report", "--from-results", work / "made", "--out", tmp_path / "again", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert files(tmp_path / "again") == made, "every CSV, figure and summary is the same"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"], "no store was opened or created"
    readme = (tmp_path / "again" / "horizon" / "README.md").read_text()
    assert "runs.csv" in readme and f"--from-results {tmp_path / 'again'} --claim horizon" in readme


def test_runs_csv_is_the_neutral_table_of_the_runs_the_report_used(store):
    work, uri = store
    runs = open_runs(uri)
    for claim in CLAIMS:
        kept = read_runs_csv((work / "made" / claim / "runs.csv").read_text())
        records = [r for r in runs.records(f"claim-{claim}") if not is_report(r.tags)]
        used, _ = select_runs(neutral_table(records), "smoke")
        assert [r.run_id for r in kept] == used["run_id"].tolist()
        by_id = {r.run_id: r for r in records}
        table = neutral_table(kept)
        pd.testing.assert_frame_equal(table, neutral_table([by_id[r.run_id] for r in kept]), check_like=True,
                                      check_exact=True)
        summary = json.loads((work / "made" / claim / "summary.json").read_text())
        assert len(table) == summary["runs"] and set(table["claim_budget"]) == {"smoke"}
        assert {"fingerprint", "harness_commit", "machine", "claim_command", "started", "ended", "outcome",
                "train.seed"} <= set(table.columns)
    horizon = neutral_table(read_runs_csv((work / "made" / "horizon" / "runs.csv").read_text()))
    assert {"model.variant", "task.length", "train.lr", "gradient_horizon", "solved"} <= set(horizon.columns)


def test_from_results_in_place_keeps_the_tables_and_says_which_claims_it_could_not_recompute(store, tmp_path):
    work, _ = store
    shutil.copytree(work / "made", tmp_path / "results")
    before = files(tmp_path / "results")
    (tmp_path / "results" / "horizon" / "runs.csv").unlink()  # a report made before reports kept their runs
    result = run_cli("report", "--from-results", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "horizon: results/horizon has no runs.csv" in result.stdout
    after = files(tmp_path / "results")
    assert {k: v for k, v in after.items() if k.startswith("params/")} == \
        {k: v for k, v in before.items() if k.startswith("params/")}
    assert (tmp_path / "dashboards" / "params.html").exists() and not (tmp_path / "mlflow.db").exists()
    refused = run_cli("report", "--from-results", "--claim", "horizon", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: --from-results results: no results/horizon/runs.csv (report horizon from its store first)"]
    both = run_cli("report", "--from-results", "--tracking-uri", "x.db", cwd=tmp_path)
    assert both.returncode == 2 and "--from-results reads no store: drop --tracking-uri" in both.stderr


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def server(store):
    """`mlflow server` on the store's database; its base URL."""
    work, uri = store
    with mlflow_server(uri, work) as base:
        yield base


def test_the_server_lists_one_report_run_per_claim_with_its_verdict_figures_and_runs(store, server):
    work, _ = store
    api = f"{server}/api/2.0/mlflow"
    again = run_cli("reproduce", "params", "--budget", "smoke", "--tracking-uri", server, cwd=work)
    assert again.returncode == 0 and "next: python -m harness report" in again.stdout, again.stderr[-2000:]
    for _ in range(2):  # reported twice: the second replaces the first
        result = run_cli("report", "--budget", "smoke", "--out", "served", "--tracking-uri", server, *[
            a for c in CLAIMS for a in ("--claim", c)], cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
    experiments = {c: http_get(f"{api}/experiments/get-by-name?experiment_name=claim-{c}") for c in CLAIMS}
    ids = {c: json.loads(e)["experiment"]["experiment_id"] for c, e in experiments.items()}
    found = _post(f"{api}/runs/search", {"experiment_ids": list(ids.values()), "filter": "tags.kind = 'report'"})
    reports = {}
    for run in found["runs"]:
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        reports.setdefault(tags["claim"], []).append((run["info"], tags))
    assert sorted(reports) == sorted(CLAIMS) and all(len(r) == 1 for r in reports.values()), reports.keys()
    for claim, [(info, tags)] in reports.items():
        summary = json.loads((work / "served" / claim / "summary.json").read_text())
        assert tags["verdict"] == summary["verdict"] and tags["claim_budget"] == "smoke"
        assert tags["runs"] == str(summary["runs"]) and f"{claim} " in result.stdout
        listed = {f["path"] for f in json.loads(http_get(f"{api}/artifacts/list?run_id={info['run_id']}"))["files"]}
        figures = {p.name for p in (work / "served" / claim).glob("*.png")}
        assert figures and figures | {"README.md", "runs.csv", "summary.json", "tables"} <= listed
        tables = {f["path"] for f in json.loads(http_get(f"{api}/artifacts/list?run_id={info['run_id']}&path=tables"))[
            "files"]}
        assert tables == {f"tables/{p.stem}.json" for p in (work / "served" / claim).glob("*.md")
                          if p.name != "README.md"}
        png = http_get(f"{server}/get-artifact?" + urllib.parse.urlencode({"path": sorted(figures)[0],
                                                                        "run_uuid": info["run_id"]}))
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        first = read_runs_csv((work / "served" / claim / "runs.csv").read_text())[0]
        assert f"(#/experiments/{ids[claim]}/runs/{first.run_id})" in tags["mlflow.note.content"]
        assert f"Verdict: {summary['verdict']}" in tags["mlflow.note.content"]
        assert files(work / "served" / claim) == {k[len(claim) + 1:]: v for k, v in files(work / "made").items()
                                                  if k.startswith(f"{claim}/")}, "report runs are not claim runs"

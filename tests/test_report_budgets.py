"""`report` never silently replaces a report made with a larger budget (smoke < quick < full),
and the next step `reproduce` prints reports what it ran: through the CLI, on a copy of the
committed results/params (a quick report) and a real store holding the claim's smoke runs."""
from __future__ import annotations

import json
import shutil

import pytest
from helpers import ROOT, run_cli


def contents(root) -> dict[str, bytes]:
    """{relative path: bytes} of every file under root, budget subfolders left out."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[:2] not in {("results", "smoke"), ("results", "quick")}}


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    """A store holding the params claim's smoke runs, made by `reproduce`; its URI and output."""
    work = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{work}/mlflow.db"
    result = run_cli("reproduce", "params", "--budget", "smoke", "--tracking-uri", uri, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return uri, result.stdout


@pytest.fixture
def checkout(tmp_path):
    """A working copy of the committed params report (quick) and the dashboards."""
    shutil.copytree(ROOT / "results" / "params", tmp_path / "results" / "params")
    shutil.copytree(ROOT / "dashboards", tmp_path / "dashboards")
    committed = json.loads((tmp_path / "results" / "params" / "summary.json").read_text())["budget"]
    assert committed in ("quick", "full"), "the test needs a committed report larger than smoke"
    return tmp_path, committed


def test_the_next_step_after_reproduce_names_the_claim_budget_and_store(smoke_store):
    uri, stdout = smoke_store
    assert stdout.strip().splitlines()[-1] == f"next: python -m harness report --claim params --budget smoke " \
                                              f"--tracking-uri {uri}"


def test_a_smaller_budget_goes_to_its_own_folder_and_leaves_the_committed_report_byte_for_byte(smoke_store, checkout):
    uri, _ = smoke_store
    work, committed = checkout
    before = contents(work)
    result = run_cli("report", "--claim", "params", "--budget", "smoke", "--tracking-uri", uri, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert contents(work) == before, "the committed report and dashboards are unchanged"
    moved = work / "results" / "smoke"
    assert json.loads((moved / "params" / "summary.json").read_text())["budget"] == "smoke"
    assert (moved / "dashboards" / "params.html").exists() and (moved / "dashboards" / "index.html").exists()
    said = [line for line in result.stdout.splitlines() if line.startswith("params: ")]
    assert len(said) == 1 and committed in said[0] and "results/smoke/params" in said[0] and "--force" in said[0]


def test_the_default_report_keeps_the_committed_budget_and_says_so(smoke_store, checkout):
    uri, _ = smoke_store
    work, committed = checkout
    before = contents(work)
    result = run_cli("report", "--tracking-uri", uri, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert contents(work) == before and not (work / "results" / "smoke").exists()
    said = [line for line in result.stdout.splitlines() if line.startswith("params: ")]
    assert len(said) == 1 and f"kept results/params (a {committed} report)" in said[0], result.stdout
    assert "--budget smoke" in said[0]


def test_force_replaces_and_a_fresh_folder_takes_the_budget_it_is_given(smoke_store, checkout, tmp_path):
    uri, _ = smoke_store
    work, _ = checkout
    result = run_cli("report", "--claim", "params", "--budget", "smoke", "--force", "--tracking-uri", uri, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((work / "results" / "params" / "summary.json").read_text())["budget"] == "smoke"
    fresh = run_cli("report", "--claim", "params", "--tracking-uri", uri, "--out", "fresh", cwd=work)
    assert fresh.returncode == 0 and json.loads((work / "fresh" / "params" / "summary.json").read_text())["budget"] \
        == "smoke" and "params: " not in fresh.stdout

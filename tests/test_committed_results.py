"""The committed results are what the code computes from their own runs: for every claim whose
`results/<claim>/` carries its runs.csv, `report --from-results` (no store) rewrites every file
of that folder byte for byte, figures included, but the README (it names the folder it was made
in). A change to an analysis that moves a committed number fails here until the claim is
reported again. A claim reported before reports kept their runs is skipped, naming it."""
from __future__ import annotations

import pytest
from helpers import ROOT, run_cli
from test_report_audit import files

import harness.claims as claims


@pytest.mark.parametrize("claim", claims.available())
def test_report_from_results_rewrites_the_committed_folder_byte_for_byte(claim, tmp_path):
    folder = ROOT / "results" / claim
    if not (folder / "runs.csv").exists():
        pytest.skip(f"results/{claim} has no runs.csv (reported before reports kept their runs)")
    result = run_cli("report", "--from-results", ROOT / "results", "--claim", claim, "--out", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    again = files(tmp_path / claim)
    committed = files(folder)
    assert sorted(again) == sorted(committed)
    assert [name for name in committed if again[name] != committed[name]] == []

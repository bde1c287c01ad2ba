"""The committed results are what the code computes from their own runs: for every claim whose
`results/<claim>/` carries its runs.csv, `report --from-results` (no store) rewrites every file
of that folder byte for byte, figures included, but the README (it names the folder it was made
in). A change to an analysis that moves a committed number fails here until the claim is
reported again. A claim reported before reports kept their runs is skipped, naming it, and so is
one whose runs' task reads a baseline from its dataset (the context claim's unigram perplexity
comes from the IMDB training text) when the archive is not on this machine."""
from __future__ import annotations

import pandas as pd
import pytest
import tasks
from helpers import ROOT, imdb_dir, run_cli
from test_report_audit import files

import harness.claims as claims


@pytest.mark.parametrize("claim", claims.available())
def test_report_from_results_rewrites_the_committed_folder_byte_for_byte(claim, tmp_path):
    folder = ROOT / "results" / claim
    if not (folder / "runs.csv").exists():
        pytest.skip(f"results/{claim} has no runs.csv (reported before reports kept their runs)")
    names = pd.read_csv(folder / "runs.csv").get("params.task.name", pd.Series(dtype=str)).dropna().unique()
    from_data = [name for name in names if getattr(tasks.get(name), "baseline_from_data", False)]
    data = imdb_dir()
    if from_data and data is None:
        pytest.skip(f"results/{claim}: the {from_data[0]} baseline needs the IMDB archive (set HARNESS_DATA_DIR)")
    result = run_cli("report", "--from-results", ROOT / "results", "--claim", claim, "--out", tmp_path, cwd=tmp_path,
                     env={"HARNESS_DATA_DIR": data} if data else None)
    assert result.returncode == 0, result.stderr[-2000:]
    again = files(tmp_path / claim)
    committed = files(folder)
    assert sorted(again) == sorted(committed)
    assert [name for name in committed if again[name] != committed[name]] == []

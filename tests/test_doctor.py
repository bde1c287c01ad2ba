"""`python -m harness doctor`: one line on a machine without CUDA; the whole check on a GPU."""
from __future__ import annotations

import pytest
import torch
from helpers import run_cli


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the gpu test below runs instead")
def test_without_cuda_doctor_says_so_in_one_line(tmp_path):
    done = run_cli("doctor", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "no CUDA device" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.gpu
def test_on_a_gpu_doctor_runs_every_check_and_writes_its_table(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    done = run_cli("doctor", "--out", tmp_path, cwd=tmp_path, timeout=600)
    table = next(tmp_path.glob("doctor-*.md")).read_text()
    for name in ("cuda tests", "bench", "horizon smoke"):
        assert name in table and name in done.stdout
    assert (tmp_path / "bench-cuda.md").exists()
    assert done.returncode == 0, table

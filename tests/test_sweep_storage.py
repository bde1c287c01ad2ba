"""A sweep on an Optuna storage it cannot use fails in one stderr line (storage named, password
hidden, cause given), exit 2, within seconds, and leaves nothing behind: no journal or lock
file, no study, no MLflow store or parent run. Real subprocesses, real sockets."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time

import pytest
from helpers import free_port, run_cli

# The bound under test is the storage's (3 s connect timeout); the CLI's own start-up (imports
# of torch, MLflow, ...) is measured and added, so a loaded machine does not fail the test.
STORAGE_SECONDS = 8


@pytest.fixture(scope="module")
def startup(tmp_path_factory):
    """Seconds `sweep --help` takes here: the start-up every failing command pays first."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness", "sweep", "--help"], capture_output=True, check=True,
                   cwd=tmp_path_factory.mktemp("help"), timeout=120)
    return time.monotonic() - start


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (the kernel completes the handshake) and never
    answers, as a hung database server or a firewall's black hole would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _kinds(tmp_path, silent_port):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a directory\n")
    return {
        "refused": (f"postgresql://u:s3cret@127.0.0.1:{free_port()}/db", "Connection refused"),
        "silent": (f"postgresql://u:s3cret@127.0.0.1:{silent_port}/db", "timeout"),
        "malformed": ("postgresql://u:s3cret@127.0.0.1:notaport/db", "malformed URL"),
        "unsupported": ("foo://u:s3cret@host/db", "unsupported URL scheme 'foo'"),
        "driver": ("mysql://u:s3cret@127.0.0.1/db", "database driver is not installed"),
        "directory": (str(tmp_path / "adir"), "is a directory"),
        "unwritable": (str(tmp_path / "afile" / "optuna.journal"), "is not a directory"),
    }


@pytest.mark.parametrize("mode", ["sweep", "report"])
@pytest.mark.parametrize("kind", ["refused", "silent", "malformed", "unsupported", "driver", "directory",
                                  "unwritable"])
def test_an_unusable_storage_is_one_line_and_leaves_nothing(tmp_path, silent_server, startup, kind, mode):
    if kind == "driver" and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("a MySQL driver is installed here")
    storage, cause = _kinds(tmp_path, silent_server)[kind]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = (["--report", "some-study"] if mode == "report" else
            ["--variant", "gru", "--trials", "2", "--set", "train.steps=5", "--set", "model.hidden_size=8"])
    start = time.monotonic()
    result = run_cli("sweep", *args, "--storage", storage, cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: storage "), lines
    assert cause in lines[0] and "s3cret" not in result.stderr
    if "://" in storage:
        assert "u:***@" in lines[0] or "***" not in storage
    assert elapsed < startup + STORAGE_SECONDS, f"{elapsed:.1f} s (start-up {startup:.1f} s)"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "no journal, lock file, MLflow store or checkpoint was created"


def test_a_report_on_a_missing_journal_creates_none(tmp_path):
    result = run_cli("sweep", "--report", "nothing-here", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: storage {tmp_path / 'optuna.journal'}: no such journal file"]
    assert list(tmp_path.iterdir()) == []


def test_a_report_names_a_missing_study(postgres, tmp_path):
    storage = f"{postgres}/optuna"
    result = run_cli("sweep", "--report", "no-such-study", "--storage", storage, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: no study named 'no-such-study' in {storage}"]

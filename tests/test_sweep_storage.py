"""A sweep on an Optuna storage it cannot use fails in one stderr line (storage named, password
hidden, cause given), exit 2, within seconds, and leaves nothing behind: no journal or lock
file, no study, no MLflow store or parent run. Real sockets and servers; the command runs in
this process (harness.cli.main, what `python -m harness` calls) so that the time measured is
the storage's, not the interpreter's start-up; one case goes through a real subprocess."""
from __future__ import annotations

import importlib.util
import socket
import time

import pytest
from helpers import free_port, run_cli

from harness.cli import main

STORAGE_SECONDS = 8  # the storages' own bound is a 3 s connect timeout


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
def test_an_unusable_storage_is_one_line_and_leaves_nothing(tmp_path, silent_server, kind, mode, capsys,
                                                           monkeypatch):
    if kind == "driver" and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("a MySQL driver is installed here")
    storage, cause = _kinds(tmp_path, silent_server)[kind]
    monkeypatch.chdir(tmp_path)  # where a default MLflow store or checkpoint would land
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = (["--report", "some-study"] if mode == "report" else
            ["--variant", "gru", "--trials", "2", "--set", "train.steps=5", "--set", "model.hidden_size=8"])
    start = time.monotonic()
    code = main(["sweep", *args, "--storage", storage])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: storage "), lines
    assert cause in lines[0] and "s3cret" not in err
    if "://" in storage:
        assert "u:***@" in lines[0] or "***" not in storage
    assert elapsed < STORAGE_SECONDS, f"{elapsed:.1f} s"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "no journal, lock file, MLflow store or checkpoint was created"


def test_the_command_line_gives_the_same_one_line(tmp_path):
    """The same, through `python -m harness` in a real process: exit status 2, one line."""
    result = run_cli("sweep", "--variant", "gru", "--trials", "2", "--storage",
                     f"postgresql://u:s3cret@127.0.0.1:{free_port()}/db", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "s3cret" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("error: storage postgresql://u:***@")]
    assert list(tmp_path.iterdir()) == []


def test_a_report_on_a_missing_journal_creates_none(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--report", "nothing-here"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: storage {tmp_path / 'optuna.journal'}: no such journal file"]
    assert list(tmp_path.iterdir()) == []


def test_a_report_names_a_missing_study(postgres, tmp_path, capsys, monkeypatch):
    storage = f"{postgres}/optuna"
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--report", "no-such-study", "--storage", storage]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: no study named 'no-such-study' in {storage}"]

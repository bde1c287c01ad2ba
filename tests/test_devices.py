"""Worker -> device assignment (`reproduce --jobs K --devices ...`, `sweep --workers K --devices ...`):
a pure function, so it is tested here without a GPU."""
from __future__ import annotations

import os

import pytest

from harness.device import assign_devices, parse_devices


def test_four_workers_on_two_devices_alternate():
    assert assign_devices(4, parse_devices("0,1", available=2)) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]


def test_more_workers_than_devices_share_them_round_robin():
    workers = assign_devices(5, parse_devices("", available=2))
    assert workers == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert {d: workers.count(d) for d in set(workers)} == {"cuda:0": 3, "cuda:1": 2}


def test_the_listed_devices_only_in_their_order():
    assert assign_devices(3, parse_devices("3,1", available=4)) == ["cuda:3", "cuda:1", "cuda:3"]


def test_without_cuda_or_on_request_of_the_cpu_every_worker_keeps_the_device_asked_for():
    assert assign_devices(3, parse_devices(None, available=0)) == ["auto"] * 3
    assert assign_devices(2, [0, 1], requested="cpu") == ["cpu", "cpu"]


@pytest.mark.parametrize("text, says", [("0,x", "indices such as"), ("1,1", "distinct"), ("-1", "distinct"),
                                        ("2", "has 2 CUDA device"), (",", "distinct")])
def test_bad_device_lists_are_refused_naming_the_option(text, says):
    with pytest.raises(ValueError, match=says) as err:
        parse_devices(text, available=2)
    assert "--devices" in str(err.value)


def test_at_least_one_worker():
    with pytest.raises(ValueError):
        assign_devices(0, [0])


def visible_devices() -> str:
    import os

    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def test_each_pool_worker_sees_the_gpu_of_its_slot():
    """reproduce --jobs K --devices ...: worker i's CUDA_VISIBLE_DEVICES is its assigned GPU, so its
    runs' "cuda" is that device (recorded as the cuda_visible_devices tag). Env only: runs on CPU."""
    from harness.reproduce.pool import Call, Pool

    gpus = tuple(d.split(":")[1] for d in assign_devices(2, [1, 0]))
    with Pool(2, gpus=gpus) as pool:
        seen = sorted(result for _, result in pool.run([Call(visible_devices, ())] * 2))
    assert gpus == ("1", "0") and seen == ["0", "1"]


def test_devices_on_a_machine_without_cuda_is_one_line(tmp_path):
    from helpers import run_cli

    done = run_cli("reproduce", "params", "--budget", "smoke", "--devices", "0,1", cwd=tmp_path)
    assert done.returncode == 2 and "no CUDA device" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_sweep_devices_on_a_machine_without_cuda_is_one_line_and_queues_nothing(tmp_path):
    from helpers import run_cli

    done = run_cli("sweep", "--variant", "lstm", "--task", "copy", "--trials", "2", "--workers", "2",
                   "--devices", "0,1", cwd=tmp_path)
    assert done.returncode == 2 and "no CUDA device" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.journal"))  # refused before the study was created


def test_sweep_devices_is_ignored_when_the_runs_are_on_the_cpu():
    from harness.commands.common import worker_gpus

    assert worker_gpus(4, "0,1", "cpu") == ()


def test_each_sweep_worker_sees_the_gpu_it_was_given(monkeypatch):
    """sweep --workers K --devices ...: worker_process sets its CUDA_VISIBLE_DEVICES before its
    trials start, so their "cuda" is that GPU. Env only: runs on CPU."""
    from harness.sweep import study

    seen = []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(study, "run_worker", lambda settings, progress, threads: seen.append(
        (os.environ.get("CUDA_VISIBLE_DEVICES"), threads)))
    study.worker_process(None, 1, gpu="3")
    assert seen == [("3", 1)]

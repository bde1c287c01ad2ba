"""The contract every synthetic task must satisfy, parametrized over the registry: a new
generator task is tested here with no test edits. Dataset tasks (those with a finite epoch)
are left out automatically; they have their own suites."""
from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

import tasks
from tasks.base import EVAL_CHUNK


def _synthetic_names() -> list[str]:
    # Dataset tasks declare themselves (`dataset = True`); asking one for its epoch length
    # would load (or download) the data at collection time.
    return [name for name in tasks.available() if not tasks.get(name).dataset]


def _smallest_length(name: str) -> int | None:
    """The `length` lower bound a task's Options declare (None when it declares none)."""
    for field in dataclasses.fields(tasks.get(name).Options):
        if field.name == "length":
            low = field.metadata.get("min")
            return None if low is None else math.ceil(low)
    return None


def _cases():
    for name in _synthetic_names():
        yield pytest.param(name, {}, id=f"{name}-default")
        small = _smallest_length(name)
        if small is not None and small != tasks.create(name).options.length:
            yield pytest.param(name, {"length": small}, id=f"{name}-length{small}")


CASES = list(_cases())
NAMES = _synthetic_names()
SEED = 7
B = 5  # odd, so code that splits a batch in halves meets a remainder


def _same(a: tasks.Batch, b: tasks.Batch) -> bool:
    if (a.times is None) != (b.times is None):
        return False
    times_equal = a.times is None or torch.equal(a.times, b.times)
    return a.x.shape == b.x.shape and torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and times_equal


def _eval_set(task, split, seed=SEED, device="cpu") -> list[tasks.Batch]:
    return list(task.eval_batches(split, seed=seed, device=device))


def _same_set(a: list[tasks.Batch], b: list[tasks.Batch]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def _random_logits(task, batch, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = (batch.x.shape[1],) if task.per_step else ()
    shape = (len(batch), *steps, task.output_size)
    return torch.randn(*shape, generator=g).requires_grad_()


def test_dataset_tasks_are_left_out_and_generators_are_endless():
    assert NAMES, "no synthetic task registered"
    for name in NAMES:
        assert tasks.create(name).steps_per_epoch(64) is None


@pytest.mark.parametrize("name,options", CASES)
def test_same_seed_gives_identical_batches(name, options):
    first, second = tasks.create(name, **options), tasks.create(name, **options)
    for index in (0, 3):
        assert _same(first.train_batch(index, B, seed=SEED), second.train_batch(index, B, seed=SEED))
    for split in ("val", "test"):
        assert _same_set(_eval_set(first, split), _eval_set(second, split))


@pytest.mark.parametrize("name,options", CASES)
def test_different_seed_or_index_gives_different_batches(name, options):
    task = tasks.create(name, **options)
    base = task.train_batch(0, 64, seed=SEED)
    assert not _same(base, task.train_batch(0, 64, seed=SEED + 1))
    assert not _same(base, task.train_batch(1, 64, seed=SEED))
    # Seeds must not be offsets into one shared stream: batch i + 1 of a seed is not batch i of the next.
    assert not _same(task.train_batch(1, 64, seed=SEED), task.train_batch(0, 64, seed=SEED + 1))
    sized = tasks.create(name, **options, val_size=2 * EVAL_CHUNK, test_size=2 * EVAL_CHUNK)
    for split in ("val", "test"):
        chunks = _eval_set(sized, split) + _eval_set(sized, split, seed=SEED + 1)
        assert not any(_same(a, b) for i, a in enumerate(chunks) for b in chunks[i + 1:])


@pytest.mark.parametrize("name,options", CASES)
def test_train_val_and_test_are_different_streams(name, options):
    task = tasks.create(name, **options)
    train = task.train_batch(0, EVAL_CHUNK, seed=SEED)
    val, test = next(task.eval_batches("val", seed=SEED)), next(task.eval_batches("test", seed=SEED))
    assert not _same(train, val) and not _same(train, test) and not _same(val, test)


@pytest.mark.parametrize("name,options", CASES)
def test_test_set_is_fixed_and_independent_of_batch_sizes(name, options):
    task = tasks.create(name, **options)
    before = _eval_set(task, "test")
    # Training at assorted batch sizes and reseeding the global RNG must not touch the set.
    for index, size in enumerate((1, 17, 64, 300)):
        task.train_batch(index, size, seed=SEED)
    torch.manual_seed(12345)
    after = _eval_set(task, "test")
    assert _same_set(before, after)
    assert all(len(chunk) == EVAL_CHUNK for chunk in before)
    assert len(before) == math.ceil(task.options.test_size / EVAL_CHUNK)
    # Chunk k is the same whatever the set's size, so a smaller set is a prefix of a larger one.
    smaller = tasks.create(name, **options, test_size=EVAL_CHUNK + 1)
    assert _same_set(_eval_set(smaller, "test"), before[:2])


@pytest.mark.parametrize("name,options", CASES)
def test_batch_shapes_and_types(name, options):
    task = tasks.create(name, **options)
    train, val = task.train_batch(2, B, seed=SEED), next(task.eval_batches("val", seed=SEED))
    for batch, size in [(train, B), (val, EVAL_CHUNK)]:
        assert len(batch) == size
        if task.input_size is not None:
            assert batch.x.dim() == 3 and batch.x.shape[0] == size and batch.x.shape[2] == task.input_size
            assert batch.x.is_floating_point() and torch.isfinite(batch.x).all()
        else:
            assert batch.x.dim() == 2 and batch.x.dtype == torch.int64
            assert 0 <= batch.x.min() and batch.x.max() < task.vocab_size
        steps = batch.x.shape[1]
        assert 1 <= steps <= task.max_length
        assert batch.y.shape == ((size, steps) if task.per_step else (size,))
        if batch.y.dtype == torch.int64:
            assert 0 <= batch.y.min() and batch.y.max() < task.output_size
        else:  # a regression target: one output
            assert batch.y.is_floating_point() and task.output_size == 1
        assert batch.times is None or batch.times.shape == (size, steps)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
@pytest.mark.parametrize("name", NAMES)
def test_batches_come_out_on_the_requested_device(name, device):
    task = tasks.create(name)
    batches = [task.train_batch(0, B, seed=SEED, device=device),
               *task.eval_batches("val", seed=SEED, device=device)]
    for batch in batches:
        for tensor in (batch.x, batch.y, batch.times):
            assert tensor is None or tensor.device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_batches_equal_cpu_batches(name):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    task = tasks.create(name)
    cpu = [task.train_batch(4, 64, seed=SEED), *task.eval_batches("test", seed=SEED)]
    cuda = [task.train_batch(4, 64, seed=SEED, device="cuda"),
            *task.eval_batches("test", seed=SEED, device="cuda")]
    for c, g in zip(cpu, cuda, strict=True):
        assert g.x.is_cuda and g.y.is_cuda and (g.times is None or g.times.is_cuda)
        assert _same(c, g.to("cpu"))


@pytest.mark.parametrize("name,options", CASES)
def test_loss_is_a_finite_differentiable_scalar(name, options):
    task = tasks.create(name, **options)
    batch = task.train_batch(0, B, seed=SEED)
    logits = _random_logits(task, batch)
    loss = task.loss(logits, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name,options", CASES)
def test_metrics_are_per_sample(name, options):
    task = tasks.create(name, **options)
    batch = task.train_batch(0, B, seed=SEED)
    with torch.no_grad():
        metrics = task.metrics(_random_logits(task, batch), batch)
    assert {task.primary_metric, "accuracy"} <= set(metrics)
    for key, value in metrics.items():
        assert value.shape == (B,), key
        assert torch.isfinite(value).all(), key
    assert ((metrics["accuracy"] >= 0) & (metrics["accuracy"] <= 1)).all()


@pytest.mark.parametrize("name,options", CASES)
def test_baseline_and_success_criterion(name, options):
    task = tasks.create(name, **options)
    baseline = task.baseline()
    assert {task.primary_metric, "accuracy"} <= set(baseline)
    assert all(math.isfinite(v) for v in baseline.values())
    assert 0 < baseline["accuracy"] <= 1

    batch = task.train_batch(0, B, seed=SEED)
    with torch.no_grad():
        reported = task.metrics(_random_logits(task, batch), batch)
    criterion = task.success()
    assert isinstance(criterion, tasks.Criterion)
    assert criterion.metric in reported and criterion.source
    if criterion.metric == task.primary_metric:
        assert criterion.higher_is_better == task.higher_is_better
    if criterion.metric in baseline:
        # A predictor that ignores the dependency must never count as having solved the task.
        assert not criterion.met(baseline[criterion.metric])


@pytest.mark.parametrize("name", NAMES)
def test_generating_a_large_batch_is_vectorised(name):
    task = tasks.create(name)
    task.train_batch(0, 8, seed=SEED)  # first-call overheads are not what this bounds
    began = time.perf_counter()
    batch = task.train_batch(1, 4096, seed=SEED)
    elapsed = time.perf_counter() - began
    assert len(batch) == 4096
    # A sanity bound, far above a vectorised generator's cost and far below a per-sample loop's.
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s for 4096 sequences"

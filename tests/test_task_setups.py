"""Each task against the published setup its docstring cites: layouts, marker positions,
target formulas, label semantics and the memoryless baselines, measured on generated data."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import tasks

SEED = 3


def _batch(name, size, index=0, **options):
    task = tasks.create(name, **options)
    return task, task.train_batch(index, size, seed=SEED)


def _within_sigmas(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    """A stated absolute tolerance for a frequency: `sigmas` binomial standard errors."""
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


# -- adding -----------------------------------------------------------------------------------
def _marks(x):
    """Positions (B,) of the earlier and later pair whose marker is 1."""
    ones = x[..., 1] == 1
    steps = torch.arange(x.shape[1])
    return torch.where(ones, steps, x.shape[1]).min(1).values, torch.where(ones, steps, -1).max(1).values


@pytest.mark.parametrize("T", [100, 6])
def test_adding_arjovsky_layout(T):
    task, batch = _batch("adding", 8192, length=T, variant="arjovsky")
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert batch.x.shape == (8192, T, 2)
    assert ((values >= 0) & (values <= 1)).all()
    assert ((markers == 0) | (markers == 1)).all()
    assert (markers[:, : T // 2].sum(1) == 1).all() and (markers[:, T // 2:].sum(1) == 1).all()
    first, second = _marks(batch.x)
    # Every position of each half is used, not a narrower window.
    assert (first.min(), first.max(), second.min(), second.max()) == (0, T // 2 - 1, T // 2, T - 1)
    torch.testing.assert_close(batch.y, (values * markers).sum(1))


def test_adding_campos_layout():
    T = 100
    task, batch = _batch("adding", 8192, length=T, variant="campos")
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert ((values >= -0.5) & (values < 0.5)).all()
    assert ((markers == 0) | (markers == 1)).all() and (markers.sum(1) == 2).all()
    first, second = _marks(batch.x)
    assert first.min() == 0 and first.max() == T // 10 - 1  # the first 10%
    assert second.min() == T // 2 and second.max() == T - 1  # the last 50%
    torch.testing.assert_close(batch.y, (values * markers).sum(1))


def _check_hochreiter(T: int, size: int = 8192):
    task, batch = _batch("adding", size, length=T, variant="hochreiter")
    values, markers = batch.x[..., 0], batch.x[..., 1]
    width, rows = batch.x.shape[1], torch.arange(size)
    assert width == task.max_length == T + T // 10
    start = (markers != 0).float().argmax(1)  # the first real pair always carries a marker
    lengths = width - start
    assert lengths.min() == T and lengths.max() == T + T // 10
    padding = torch.arange(width) < start[:, None]
    assert (batch.x[padding] == 0).all()  # pre-padded: leading rows are all zero
    assert ((values >= -1) & (values <= 1)).all()
    assert ((markers == -1) | (markers == 0) | (markers == 1)).all()
    assert ((markers == 1).sum(1) == 2).all()
    assert (markers[:, -1] == -1).all()
    first_pair = markers[rows, start]
    assert ((first_pair == -1) | (first_pair == 1)).all()
    assert ((markers == -1).sum(1) == torch.where(first_pair == 1, 1, 2)).all()
    earlier, later = _marks(batch.x)
    earlier, later = earlier - start, later - start
    assert earlier.max() <= 9  # X1 is one of the first ten real pairs
    assert later.max() <= max(9, T // 2 - 1)  # X2: one of the first T/2 - 1 pairs bar X1
    # A marked first pair with the other mark past pair 9 can only be X1, which is zeroed.
    x1_first = (first_pair == 1) & (later >= 10)
    assert (values[rows, start][x1_first] == 0).all()
    assert x1_first.any() or T // 2 - 1 < 10
    torch.testing.assert_close(batch.y, 0.5 + (values * (markers == 1)).sum(1) / 4)
    return later


def test_adding_hochreiter_layout():
    _check_hochreiter(100)


def test_adding_hochreiter_x2_reaches_the_last_candidate_pair():
    T = 100
    later = _check_hochreiter(T, size=32768)
    assert later.max() == T // 2 - 1


def _adding_min_length() -> int:
    field = next(f for f in dataclasses.fields(tasks.get("adding").Options) if f.name == "length")
    return math.ceil(field.metadata["min"])


@pytest.mark.parametrize("T", [20, 21, 24])
def test_adding_hochreiter_short_lengths_are_generated_correctly(T):
    _check_hochreiter(T)


@pytest.mark.parametrize("T", [_adding_min_length(), 10, 11, 19])
def test_adding_hochreiter_below_its_own_minimum_is_refused_up_front(T):
    """X2 must fit among the first T/2 - 1 pairs after X1's ten: the variant needs T >= 20,
    stricter than the task's general minimum; a shorter T is refused, never half-generated."""
    with pytest.raises(ValueError, match="the hochreiter adding variant needs length >= 20"):
        tasks.create("adding", length=T, variant="hochreiter")


@pytest.mark.parametrize("tolerance", [0.04, 0.3])
@pytest.mark.parametrize("variant,constant", [("arjovsky", 1.0), ("hochreiter", 0.5), ("campos", 0.0)])
def test_adding_memoryless_predictor_scores_the_baseline(variant, constant, tolerance):
    n = 65536
    task, batch = _batch("adding", n, length=40, variant=variant, tolerance=tolerance)
    metrics = task.metrics(torch.full((n, 1), constant), batch)
    baseline = task.baseline()
    assert metrics["mse"].mean().item() == pytest.approx(baseline["mse"], rel=0.02)
    assert _within_sigmas(metrics["accuracy"].mean().item(), baseline["accuracy"], n)
    if variant != "hochreiter":
        assert baseline["mse"] == pytest.approx(0.1667, abs=5e-5)


# -- copy -------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 100, 500])
def test_copy_layout_and_targets(T):
    task, batch = _batch("copy", 512, length=T)
    assert batch.x.shape == (512, T + 20, 10) and batch.y.shape == (512, T + 20)
    assert (batch.x.sum(-1) == 1).all()
    ids = batch.x.argmax(-1)
    symbols = ids[:, :10]
    assert ((symbols >= 0) & (symbols <= 7)).all() and len(symbols.unique()) == 8
    assert (ids[:, 10: T + 9] == 8).all() and (ids[:, T + 9] == 9).all() and (ids[:, T + 10:] == 8).all()
    assert (batch.y[:, : T + 10] == 8).all() and torch.equal(batch.y[:, T + 10:], symbols)


def _memoryless_copy_logits(batch, T):
    """Blank with certainty for T + 10 steps, then uniform over the eight symbols."""
    logits = torch.full((len(batch), T + 20, 9), -1e4)
    logits[:, : T + 10, 8] = 0.0
    logits[:, T + 10:, :8] = 0.0
    return logits


@pytest.mark.parametrize("T,published", [(100, 0.1733), (200, 0.0945), (500, 0.0400)])
def test_copy_memoryless_baseline(T, published):
    n = 1024
    task, batch = _batch("copy", n, length=T)
    logits = _memoryless_copy_logits(batch, T)
    metrics = task.metrics(logits, batch)
    formula = 10 * math.log(8) / (T + 20)
    assert metrics["cross_entropy"].mean().item() == pytest.approx(formula, rel=0.02)
    assert task.loss(logits, batch).item() == pytest.approx(formula, rel=0.02)
    assert task.baseline()["cross_entropy"] == pytest.approx(formula, rel=1e-9)
    assert task.baseline()["cross_entropy"] == pytest.approx(published, abs=5e-5)
    assert _within_sigmas(metrics["accuracy"].mean().item(), task.baseline()["accuracy"], n * 10)


# -- recall -----------------------------------------------------------------------------------
@pytest.mark.parametrize("distractors", ["blank", "noise"])
@pytest.mark.parametrize("K,L", [(8, 40), (3, 5)])
def test_recall_layout_and_chance(distractors, K, L):
    n = 8192
    task, batch = _batch("recall", n, length=L, symbols=K, distractors=distractors)
    assert batch.x.shape == (n, L + 2, K + 2) and (batch.x.sum(-1) == 1).all()
    ids = batch.x.argmax(-1)
    assert torch.equal(ids[:, 0], batch.y) and (ids[:, -1] == K + 1).all()
    middle = ids[:, 1:-1]
    if distractors == "blank":
        assert (middle == K).all()
    else:
        assert middle.max() < K and len(middle.unique()) == K
    counts = torch.bincount(batch.y, minlength=K)
    assert all(_within_sigmas(c.item() / n, 1 / K, n) for c in counts)
    assert task.baseline()["accuracy"] == pytest.approx(1 / K)
    metrics = task.metrics(torch.zeros(n, K), batch)
    assert _within_sigmas(metrics["accuracy"].mean().item(), 1 / K, n)
    assert metrics["cross_entropy"].mean().item() == pytest.approx(task.baseline()["cross_entropy"])


# -- temporal order ---------------------------------------------------------------------------
PAPER_WINDOWS = {2: [(10, 20), (50, 60)], 3: [(10, 20), (33, 43), (66, 76)]}  # at T = 100
E, B_END, X, Y = 5, 4, 6, 7


@pytest.mark.parametrize("T", [100, 200])
@pytest.mark.parametrize("n_symbols", [2, 3])
def test_temporal_order_layout_and_labels(n_symbols, T):
    n = 8192
    task, batch = _batch("temporal_order", n, length=T, symbols=n_symbols)
    width, rows = batch.x.shape[1], torch.arange(n)
    assert batch.x.shape == (n, T + T // 10, 8) and task.output_size == 2 ** n_symbols
    real = batch.x.sum(-1)
    assert ((real == 0) | (real == 1)).all()
    start = real.argmax(1)  # padding rows are all zero, real rows one-hot
    assert ((torch.arange(width) >= start[:, None]) == (real == 1)).all()
    lengths = width - start
    assert lengths.min() == T and lengths.max() == T + T // 10
    ids = torch.where(real == 1, batch.x.argmax(-1), -1)
    assert (ids[rows, start] == E).all() and (ids[:, -1] == B_END).all()
    assert ((ids == E).sum(1) == 1).all() and ((ids == B_END).sum(1) == 1).all()
    relevant = (ids == X) | (ids == Y)
    assert (relevant.sum(1) == n_symbols).all()
    distractors = ids[(real == 1) & ~relevant & (ids != E) & (ids != B_END)]
    assert distractors.max() <= 3 and len(distractors.unique()) == 4  # a-d
    offsets = (torch.arange(width) - start[:, None])[relevant].view(n, n_symbols)  # in time order
    for k, (lo, hi) in enumerate(PAPER_WINDOWS[n_symbols]):
        lo, hi = lo * T // 100, hi * T // 100  # the paper's T = 100 windows, scaled
        assert offsets[:, k].min() == lo and offsets[:, k].max() == hi
    # The order of the X/Ys, read as binary with X = 0 and Y = 1: XX=0, XY=1, YX=2, YY=3, ...
    bits = (ids[relevant].view(n, n_symbols) == Y).long()
    assert torch.equal(batch.y, (bits * 2 ** torch.arange(n_symbols - 1, -1, -1)).sum(1))
    classes = 2 ** n_symbols
    counts = torch.bincount(batch.y, minlength=classes)
    assert len(counts) == classes and all(_within_sigmas(c.item() / n, 1 / classes, n) for c in counts)
    assert task.baseline()["accuracy"] == pytest.approx(1 / classes)


# -- frequency --------------------------------------------------------------------------------
CLASS_ONE = 0.5 + 0.5 * math.log(6 / 5) / math.log(100)


def _real_part(batch):
    """(B, T) mask of the non-padded samples: padding carries time 0 and is at the start."""
    nonzero = batch.times != 0
    start = nonzero.float().argmax(1)
    return torch.arange(batch.times.shape[1]) >= start[:, None]


@pytest.mark.parametrize("sampling,step", [("standard", 1.0), ("high_res", 0.1), ("async", None)])
def test_frequency_sampling_padding_and_class_balance(sampling, step):
    task = tasks.create("frequency", sampling=sampling)
    batches = [task.train_batch(i, 512, seed=SEED) for i in range(8)]
    length, width = task.options.length, task.max_length
    ones, longest = 0, 0
    for batch in batches:
        real = _real_part(batch)
        assert batch.x.shape == (512, width, 2) and batch.times.shape == (512, width)
        assert (batch.x[~real] == 0).all() and (batch.times[~real] == 0).all()
        assert ((batch.times >= 0) & (batch.times <= length)).all()
        torch.testing.assert_close(batch.x[..., 1], batch.times / 100)
        counts = real.sum(1)
        gaps = batch.times.diff(dim=1)[real[:, 1:] & real[:, :-1]]
        assert (gaps >= 0).all()  # non-decreasing within the real part
        if step is None:
            assert counts.min() >= task.options.min_duration and counts.max() <= length
        else:
            torch.testing.assert_close(gaps, torch.full_like(gaps, step), atol=1e-4, rtol=0)
            assert counts.min() >= math.ceil(task.options.min_duration / step) and counts.max() <= width
        ones += batch.y.sum().item()
        longest = max(longest, counts.max().item())
    assert longest >= 0.99 * width
    total = 512 * len(batches)
    # Half of every batch is forced into the band; only the log-uniform half varies, with
    # P(5 <= P <= 6) = ln(6/5)/ln(100).
    in_band = math.log(6 / 5) / math.log(100)
    assert abs(ones / total - CLASS_ONE) <= 4 * math.sqrt(in_band * (1 - in_band) / (total / 2)) / 2
    assert task.baseline()["accuracy"] == pytest.approx(CLASS_ONE)


def test_frequency_time_input_switch():
    task, batch = _batch("frequency", 64, time_input=False)
    assert task.input_size == 1 and batch.x.shape == (64, task.max_length, 1)
    with_time = tasks.create("frequency").train_batch(0, 64, seed=SEED)
    # The switch removes the time feature and leaves the wave and the timestamps alone.
    assert torch.equal(batch.x[..., 0], with_time.x[..., 0]) and torch.equal(batch.times, with_time.times)


def _fitted_periods(wave, real, grid, periods):
    """Least-squares period per sequence: the candidate whose sine/cosine pair explains the
    most of the noise-free samples. The fit is shift-invariant in time, so on a regular
    sampling grid shared by every row the sums reduce to matrix products."""
    wave, real, grid, periods = wave.double(), real.double(), grid.double(), periods.double()
    phase = 2 * math.pi * grid[None, :] / periods[:, None]  # (K, T)
    s, c, y = phase.sin(), phase.cos(), wave * real
    ys, yc = y @ s.T, y @ c.T
    ss, cc, sc = real @ (s * s).T, real @ (c * c).T, real @ (s * c).T
    explained = (cc * ys ** 2 - 2 * sc * ys * yc + ss * yc ** 2) / (ss * cc - sc ** 2).clamp_min(1e-12)
    return periods[explained.argmax(1)]


@pytest.mark.parametrize("sampling,step,shortest", [("standard", 1.0, 2.0), ("high_res", 0.1, 1.0)])
def test_frequency_labels_agree_with_the_fitted_period(sampling, step, shortest):
    # Standard sampling needs the larger sample to pin the aliased fraction down.
    n = 2048 if sampling == "standard" else 512
    task, batch = _batch("frequency", n, sampling=sampling)
    real, width = _real_part(batch), task.max_length
    grid = (torch.arange(width) - (width - 1)) * step  # time relative to the last sample
    relative = batch.times - batch.times[:, -1:]
    torch.testing.assert_close(relative[real], grid.expand(n, -1)[real], atol=1e-3, rtol=0)
    # Candidates stop at the Nyquist period of 2 ms under standard sampling.
    candidates = torch.logspace(math.log10(shortest), math.log10(200), 2000)
    period = _fitted_periods(batch.x[..., 0], real, grid, candidates)
    label = batch.y == 1
    assert label.sum() >= n // 2
    assert ((period[label] >= 4.95) & (period[label] <= 6.05)).all()
    # The in-band periods are spread uniformly over the whole band, not a part of it.
    assert _within_sigmas((period[label] > 5.5).float().mean().item(), 0.5, label.sum().item())
    duration = real.sum(1) * step
    clearly_inside = (period >= 5.1) & (period <= 5.9)
    clearly_outside = ((period < 4.5) | (period > 6.7)) & (duration >= 2 * period)
    assert clearly_outside.sum() >= n // 8 and not label[clearly_outside].any()
    agree = label[clearly_inside].float().mean().item()
    if sampling == "standard":
        # Sampled every 1 ms, periods in [1.2, 1.25] ms alias onto [5, 6] ms: a few waves
        # labelled 0 look in-band: about 0.5% of all sequences, 1% of the in-band ones.
        assert agree >= 0.97
    else:
        assert agree == 1.0

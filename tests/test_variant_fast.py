"""The fast paths beyond the generic contract: the Skip RNN that really skips (update pattern,
thresholds, straight-through gradients, all within the declared tolerance), declining an
input, the choice of `auto`, CUDA."""
from __future__ import annotations

import math

import pytest
import torch

import variants
from variants import skip_fast

X, H = 5, 6


def _run(name, path, x, state=None, dtype=torch.float64, seed=0, setup=None, **options):
    torch.manual_seed(seed)
    rnn = variants.create(name, X, H, **options).to(device=x.device, dtype=dtype)
    if setup is not None:
        setup(rnn)
    x = x.clone().requires_grad_()
    state = None if state is None else tuple(s.to(x.device).clone().requires_grad_() for s in state)
    out, final = rnn(x, state, path=path)
    g = torch.Generator().manual_seed(3)
    loss = (out * torch.randn(out.shape, generator=g, dtype=dtype)).sum()
    loss = loss + sum((s * torch.randn(s.shape, generator=g, dtype=dtype)).sum() for s in final)
    loss.backward()
    grads = {"x": x.grad, **{k: p.grad for k, p in rnn.named_parameters() if p.requires_grad}}
    if state is not None:
        grads.update({f"state{i}": s.grad for i, s in enumerate(state)})
    return out.detach(), tuple(s.detach() for s in final), grads


def _gate(weight_scale, bias):
    def setup(rnn):
        with torch.no_grad():
            for cell in rnn.cells:
                cell.update_weight.mul_(weight_scale)
                cell.update_bias.fill_(bias)
    return setup


SKIP_REGIMES = {
    "half": dict(setup=_gate(0.0, math.log(0.4 / 0.6))),  # Δũ = 0.4: 1, 0, 1, 0, ...
    "tie": dict(setup=_gate(0.0, 0.0)),  # Δũ = 0.5 exactly: round(0.5) = 0 and min() ties
    "sparse": dict(setup=_gate(0.0, math.log(0.1 / 0.9))),  # Δũ = 0.1: 5 steps skipped at a time
    "learned": dict(setup=_gate(4.0, -1.0)),  # Δũ varies by row and step
    "always": dict(update_gate="always"),
    "never": dict(update_gate="never"),
}


@pytest.mark.parametrize("name", ["skip_lstm", "skip_gru"])
@pytest.mark.parametrize("regime", list(SKIP_REGIMES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_skip_fast_path_is_the_masked_reference(name, regime, dtype):
    """The same update pattern (update counts equal exactly); outputs, final states and
    gradients within tolerance."""
    x = torch.randn(6, 25, X, generator=torch.Generator().manual_seed(1), dtype=dtype)
    fast = _run(name, "fast", x, dtype=dtype, **SKIP_REGIMES[regime])
    ref = _run(name, "explicit", x, dtype=dtype, **SKIP_REGIMES[regime])
    assert torch.equal(fast[1][-1], ref[1][-1]), "update counts per sequence"
    out_tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast[0], ref[0], **out_tol)
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b, **out_tol)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for key in ref[2]:
        torch.testing.assert_close(fast[2][key], ref[2][key], **tol, msg=key)


@pytest.mark.parametrize("name", ["skip_lstm", "skip_gru"])
def test_skip_fast_path_from_a_given_state(name):
    """A state passed in (ũ < 0.5: the first steps skip) continues exactly, gradients included."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 12, X, generator=g, dtype=torch.float64)
    rnn = variants.create(name, X, H)
    state = [torch.randn(s.shape, generator=g, dtype=torch.float64) for s in rnn.initial_state(5)]
    state[-2] = torch.rand(state[-2].shape, generator=g, dtype=torch.float64) * 0.5
    state[-1] = torch.full_like(state[-1], 3.0)
    fast = _run(name, "fast", x, tuple(state), **SKIP_REGIMES["learned"])
    ref = _run(name, "explicit", x, tuple(state), **SKIP_REGIMES["learned"])
    assert torch.equal(fast[1][-1], ref[1][-1]), "update counts per sequence"
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-9, atol=1e-9)
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    for key in ref[2]:
        torch.testing.assert_close(fast[2][key], ref[2][key], rtol=1e-9, atol=1e-9, msg=key)


@pytest.mark.parametrize("delta,pattern", [(0.3, [1, 0, 1, 0, 1, 0]), (0.2, [1, 0, 0, 1, 0, 0]),
                                           (0.6, [1, 1, 1, 1, 1, 1]), (0.1, [1, 0, 0, 0, 0, 0])])
def test_skip_fast_path_update_pattern(delta, pattern):
    """Hand-set Δũ: the fast path updates exactly where the accumulation rule says."""
    rnn = variants.create("skip_lstm", X, H)
    with torch.no_grad():
        rnn.cells[0].update_weight.zero_()
        rnn.cells[0].update_bias.fill_(math.log(delta / (1 - delta)))
    x = torch.randn(3, len(pattern), X)
    out, state = rnn(x, path="fast")
    changed = [1] + [int(not torch.equal(out[:, t], out[:, t - 1])) for t in range(1, len(pattern))]
    assert changed == pattern
    assert torch.equal(state[-1], torch.full_like(state[-1], float(sum(pattern))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_skip_thresholds_count_the_reference_accumulation(dtype):
    """searchsorted on the table = the number of steps the reference's ũ += Δ stays <= 0.5."""
    deltas = torch.cat([torch.rand(300, dtype=torch.float64) ** 3, torch.tensor([0.5, 0.25, 0.1, 1 / 3, 0.0])])
    deltas = deltas.to(dtype)
    table = skip_fast.skip_thresholds(40, dtype, "cpu")
    counts = torch.searchsorted(table, deltas.neg(), right=True)
    for delta, count in zip(deltas, counts.tolist()):
        u, skips = delta.clone(), 0
        while torch.round(u) == 0 and skips < table.numel():
            u, skips = u + torch.minimum(delta, 1.0 - u), skips + 1
        assert count == skips, (delta.item(), count, skips)


def test_a_fast_path_declines_what_only_the_reference_defines():
    """ũ outside [-0.5, 1.5) (round() neither 0 nor 1) and unequal lengths: the Skip fast path
    returns None and the unroll runs (and reports) the explicit path."""
    rnn = variants.create("skip_gru", X, H)
    x = torch.randn(2, 7, X)
    state = list(rnn.initial_state(2))
    state[-2] = torch.full_like(state[-2], 1.7)  # round(1.7) = 2: a weight of 2, only explicit defines it
    out, final = rnn(x, tuple(state), path="fast")
    assert rnn.last_path == "explicit"
    ref, ref_final = rnn(x, tuple(state), path="explicit")
    assert torch.equal(out, ref) and all(torch.equal(a, b) for a, b in zip(final, ref_final))
    rnn(x, lengths=torch.tensor([7, 3]), path="fast")
    assert rnn.last_path == "explicit"
    rnn(x, path="fast")
    assert rnn.last_path == "fast"


@pytest.mark.parametrize("name", variants.available())
def test_auto_takes_a_declared_path_by_shape_alone(name):
    """`auto` is a rule of shapes (the same run always takes the same path), within `paths`."""
    cls = variants.get(name)
    for device in ("cpu", "cuda"):
        for batch, steps in ((1, 1), (8, 24), (64, 22), (64, 52), (64, 125), (128, 500), (256, 2000)):
            first = cls.preferred_path(batch, steps, device)
            assert first in cls.paths
            assert cls.preferred_path(batch, steps, device) == first
            rnn = variants.create(name, X, H)
            assert rnn.resolve_path("auto", batch, steps, device) == first


@pytest.mark.gpu
@pytest.mark.parametrize("name", variants.available())
def test_every_path_runs_on_cuda(name):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    x = torch.randn(4, 30, X)
    for path in variants.get(name).paths:
        cpu = _run(name, path, x, dtype=torch.float32)
        gpu = _run(name, path, x.cuda(), dtype=torch.float32)
        torch.testing.assert_close(gpu[0].cpu(), cpu[0], rtol=1e-4, atol=1e-5)
        for key in cpu[2]:
            torch.testing.assert_close(gpu[2][key].cpu(), cpu[2][key], rtol=1e-3, atol=1e-4, msg=key)

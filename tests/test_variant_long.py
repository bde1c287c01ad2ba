"""Long-sequence equivalence: every declared path against the explicit step loop at T = 512,
outputs, final state and gradients, within the cell's stated tolerance for that path, in float32
and under bf16 autocast (against the float32 explicit loop, within the cell's bf16_tolerance).
A hand-written backward accumulates rounding over T, so T = 9 (test_variant_contract) is not
enough; a small batch and state keep this in the default suite."""
from __future__ import annotations

import pytest
import torch

import variants

B, T, X, H = 2, 512, 3, 4


def _paths():
    return [(n, p) for n in variants.available() for p in variants.get(n).paths if p != "explicit"]


def _run(name, path, x, times, bidirectional, bf16=False, **options):
    torch.manual_seed(0)
    rnn = variants.create(name, X, H, bidirectional=bidirectional, **options)
    xi = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out, state = rnn(xi, times=times, path=path)
        # a mean keeps the loss (and so the gradients) of order one whatever T is
        loss = out.float().pow(2).mean() + sum(s.float().pow(2).mean() for s in state)
    loss.backward()
    assert rnn.last_path == path, f"{path} declined an input of length {T}"
    return (out.detach().float(), [s.detach().float() for s in state], xi.grad,
            {k: v.grad for k, v in rnn.named_parameters()})


def _inputs():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T, X, generator=g)
    return x, torch.rand(B, T, generator=g).mul(2).cumsum(1)  # irregular, increasing times


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name,path", _paths())
def test_every_path_matches_the_explicit_loop_at_512_steps(name, path, bidirectional):
    x, times = _inputs()
    fast, ref = (_run(name, p, x, times, bidirectional) for p in (path, "explicit"))
    rtol, atol = variants.get(name).path_tolerance(path)
    torch.testing.assert_close(fast[0], ref[0], rtol=rtol, atol=atol, msg="outputs")
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg="final state")
    torch.testing.assert_close(fast[2], ref[2], rtol=rtol, atol=atol, msg="input gradient")
    for key in ref[3]:  # weight gradients sum over every step: 10x the rounding, as at T = 9
        torch.testing.assert_close(fast[3][key], ref[3][key], rtol=10 * rtol, atol=atol, msg=key)


@pytest.mark.parametrize("name,path", [(n, p) for n in variants.available() for p in variants.get(n).paths])
def test_every_path_under_bf16_autocast_stays_within_the_cells_bf16_tolerance_at_512_steps(name, path):
    """bf16 training (train.precision=bf16): each path under CPU autocast against the float32
    explicit loop. Options that make the cell smooth (a Skip RNN's round() off, as for
    gradcheck) keep one update pattern in both precisions, so the comparison is of rounding."""
    x, times = _inputs()
    options = variants.get(name).gradcheck_options
    low, ref = (_run(name, p, x, times, True, bf16=b, **options) for p, b in ((path, True), ("explicit", False)))
    rtol, atol, grad = variants.get(name).bf16_tolerance
    torch.testing.assert_close(low[0], ref[0], rtol=rtol, atol=atol)
    for a, b in zip(low[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    torch.testing.assert_close(low[2], ref[2], rtol=rtol, atol=atol)
    errors = {key: float((low[3][key] - ref[3][key]).norm() / ref[3][key].norm().clamp_min(1e-12)) for key in ref[3]}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= grad, f"{worst}: relative gradient error {errors[worst]:.3f} > {grad}"

"""Long-sequence equivalence: every declared path against the explicit step loop at T = 512,
outputs, final state and gradients, within the cell's stated tolerance for that path. A
hand-written backward accumulates rounding over T, so T = 9 (test_variant_contract) is not
enough; a small batch and state keep this in the default suite."""
from __future__ import annotations

import pytest
import torch

import variants

B, T, X, H = 2, 512, 3, 4


def _paths():
    return [(n, p) for n in variants.available() for p in variants.get(n).paths if p != "explicit"]


def _run(name, path, x, times, bidirectional):
    torch.manual_seed(0)
    rnn = variants.create(name, X, H, bidirectional=bidirectional)
    xi = x.clone().requires_grad_()
    out, state = rnn(xi, times=times, path=path)
    assert rnn.last_path == path, f"{path} declined a plain float32 input of length {T}"
    # a mean keeps the loss (and so the gradients) of order one whatever T is
    (out.pow(2).mean() + sum(s.pow(2).mean() for s in state)).backward()
    return out.detach(), [s.detach() for s in state], xi.grad, {k: v.grad for k, v in rnn.named_parameters()}


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name,path", _paths())
def test_every_path_matches_the_explicit_loop_at_512_steps(name, path, bidirectional):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T, X, generator=g)
    times = torch.rand(B, T, generator=g).mul(2).cumsum(1)  # irregular, increasing
    fast, ref = (_run(name, p, x, times, bidirectional) for p in (path, "explicit"))
    rtol, atol = variants.get(name).path_tolerance(path)
    torch.testing.assert_close(fast[0], ref[0], rtol=rtol, atol=atol, msg="outputs")
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg="final state")
    torch.testing.assert_close(fast[2], ref[2], rtol=rtol, atol=atol, msg="input gradient")
    for key in ref[3]:  # weight gradients sum over every step: 10x the rounding, as at T = 9
        torch.testing.assert_close(fast[3][key], ref[3][key], rtol=10 * rtol, atol=atol, msg=key)

"""Reference equivalence with torch.nn: `from_torch` and the fused paths."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import variants

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("path", ["auto", "explicit"])
def test_from_torch_computes_the_same_function(kind, layers, bidirectional, batch_first, path):
    torch.manual_seed(0)
    ref = kind(6, 7, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    ours = variants.from_torch(ref)
    x = torch.randn(4, 10, 6)  # batch-first for ours
    d = 2 if bidirectional else 1
    h0 = torch.randn(layers * d, 4, 7)
    c0 = torch.randn(layers * d, 4, 7)
    ref_in = x if batch_first else x.transpose(0, 1)
    if kind is nn.LSTM:
        ref_out, (h_n, c_n) = ref(ref_in, (h0, c0))
        out, state = ours(x, (h0, c0), path=path)
        torch.testing.assert_close(state[1], c_n, **TOL)
    else:
        ref_out, h_n = ref(ref_in, h0)
        out, state = ours(x, (h0,), path=path)
    if not batch_first:
        ref_out = ref_out.transpose(0, 1)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(state[0], h_n, **TOL)


def test_from_torch_without_biases():
    torch.manual_seed(0)
    ref = nn.LSTM(3, 4, bias=False, batch_first=True)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(variants.from_torch(ref)(x)[0], ref(x)[0], **TOL)


@pytest.mark.parametrize("module,message", [
    (nn.RNN(3, 4, nonlinearity="relu"), "tanh"),
    (nn.LSTM(3, 4, proj_size=2), "proj_size"),
    (nn.Linear(3, 4), "supported: GRU, LSTM, RNN"),
])
def test_from_torch_refuses_what_it_cannot_represent(module, message):
    with pytest.raises(ValueError, match=message):
        variants.from_torch(module)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_fused_path_shares_parameters_and_auto_follows_the_cells_rule(name):
    rnn = variants.create(name, 3, 4)
    x = torch.randn(2, 6, 3)
    rnn(x)
    assert rnn.last_path == variants.get(name).preferred_path(2, 6, "cpu")
    fused, _ = rnn(x, path="fused")
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(0.5)  # one set of parameters: both paths must see the change
    a, _ = rnn(x, path="fused")
    b, _ = rnn(x, path="explicit")
    assert rnn.last_path == "explicit"
    torch.testing.assert_close(a, b, **TOL)
    assert not torch.allclose(a, fused)


def test_unknown_path_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: fast, explicit"):
        variants.create("phased_lstm", 3, 4)(torch.randn(1, 2, 3), path="fused")

"""Variable-length sequences and timestamp shapes, for every registered cell and path: the
padding never enters the computation, each direction starts and ends at the true ends, and
the results equal torch.nn's on a PackedSequence where torch has the cell."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import variants
from harness.training.model import ModelConfig, SequenceModel

NAMES = variants.available()
B, T, X, H = 4, 9, 3, 5
LENGTHS = torch.tensor([9, 3, 1, 6])


def _paths():
    return [(n, p) for n in NAMES for p in variants.get(n).paths]


def _data(seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, X, generator=g, dtype=dtype)
    times = torch.rand(B, T, generator=g, dtype=dtype).mul(2).cumsum(1)
    return x, times


def _make(name, seed=0, **kw):
    torch.manual_seed(seed)
    return variants.create(name, X, H, **kw)


@pytest.mark.parametrize("name,path", _paths())
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_sequence_is_computed_alone_on_its_valid_steps(name, path, bidirectional):
    """A padded batch with lengths = every sequence run by itself, cut to its length: outputs
    (0 past the end), final states of both directions, and gradients w.r.t. the valid inputs."""
    rnn = _make(name, num_layers=2, bidirectional=bidirectional).eval()
    x, times = _data()
    x = x.clone().requires_grad_()
    out, state = rnn(x, times=times, lengths=LENGTHS, path=path)
    (out.pow(2).sum() + sum(s.pow(2).sum() for s in state)).backward()
    rtol, atol = variants.get(name).path_tolerance(path)
    for b, n in enumerate(LENGTHS.tolist()):
        xb = x[b:b + 1, :n].detach().clone().requires_grad_()
        alone, alone_state = rnn(xb, times=times[b:b + 1, :n], path="explicit")
        torch.testing.assert_close(out[b:b + 1, :n], alone, rtol=rtol, atol=atol)
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:])), "outputs past the end are 0"
        for s, a in zip(state, alone_state):
            torch.testing.assert_close(s[:, b:b + 1], a, rtol=rtol, atol=atol)
        (alone.pow(2).sum() + sum(s.pow(2).sum() for s in alone_state)).backward()
        torch.testing.assert_close(x.grad[b, :n], xb.grad[0], rtol=10 * rtol, atol=10 * atol)
        assert torch.equal(x.grad[b, n:], torch.zeros_like(x.grad[b, n:])), "padding gets no gradient"


@pytest.mark.parametrize("name,path", _paths())
def test_padding_content_does_not_matter(name, path):
    rnn = _make(name, bidirectional=True).eval()
    x, times = _data()
    noisy = x.clone()
    for b, n in enumerate(LENGTHS.tolist()):
        noisy[b, n:] = 1e3 * torch.randn(T - n, X)
    a, sa = rnn(x, times=times, lengths=LENGTHS, path=path)
    c, sc = rnn(noisy, times=times, lengths=LENGTHS, path=path)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    for u, v in zip(sa, sc):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def _torch_cases():
    for name in NAMES:
        kind = variants.get(name).torch_module
        if kind is None:
            continue
        for path in variants.get(name).paths:
            yield pytest.param(kind, path, id=f"{name}-{path}")


@pytest.mark.parametrize("kind,path", list(_torch_cases()))
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_equals_torch_on_a_packed_sequence(kind, path, layers, bidirectional):
    torch.manual_seed(0)
    ref = kind(X, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    ours = variants.from_torch(ref)
    x, _ = _data()
    d = 2 if bidirectional else 1
    h0 = torch.randn(layers * d, B, H)
    c0 = torch.randn(layers * d, B, H)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    if kind is nn.LSTM:
        ref_out, (h_n, c_n) = ref(packed, (h0, c0))
        out, state = ours(x, (h0, c0), lengths=LENGTHS, path=path)
        torch.testing.assert_close(state[1], c_n, rtol=1e-5, atol=1e-5)
    else:
        ref_out, h_n = ref(packed, h0)
        out, state = ours(x, (h0,), lengths=LENGTHS, path=path)
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=T)
    assert ours.last_path == path
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[0], h_n, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_full_lengths_are_the_unpadded_computation(name):
    rnn = _make(name, bidirectional=True)
    x, times = _data()
    a, _ = rnn(x, times=times)
    b, _ = rnn(x, times=times, lengths=torch.full((B,), T))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name,path", _paths())
@pytest.mark.parametrize("bidirectional", [False, True])
def test_timestamps_of_the_wrong_shape_are_refused(name, path, bidirectional):
    rnn = _make(name, bidirectional=bidirectional)
    x = torch.randn(4, 5, X)
    for bad in (torch.rand(4, 3), torch.rand(4, 5, 1), torch.rand(5, 4)):
        with pytest.raises(ValueError, match=r"times must have shape \(B, T\) = \(4, 5\) to match x of shape "
                                             r"\(4, 5, 3\), got " + str(tuple(bad.shape)).replace("(", r"\(")
                                             .replace(")", r"\)")):
            rnn(x, times=bad, path=path)
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnn(x, lengths=torch.tensor([5, 6, 1, 2]), path=path)
    with pytest.raises(ValueError, match=r"lengths must be a \(B,\)"):
        rnn(x, lengths=torch.tensor([5.0, 4.0, 1.0, 2.0]), path=path)


@pytest.mark.parametrize("name", NAMES)
def test_model_features_do_not_depend_on_the_padding_side(name):
    """The same reviews, pre- and post-padded, give identical logits when lengths are given;
    a bidirectional model's backward half ends at each review's first word."""
    from tasks.imdb import masked_batch

    task = type("Tokens", (), {"vocab_size": 50, "input_size": None, "output_size": 1, "per_step": False,
                               "make_head": lambda self, n: torch.nn.Linear(n, 1)})()
    config = ModelConfig(variant=name, hidden_size=H, bidirectional=True, embedding_dim=X)
    torch.manual_seed(0)
    model = SequenceModel(config, variants.get(name).Options(), task).eval()
    g = torch.Generator().manual_seed(3)
    words = [torch.randint(2, 50, (n,), generator=g) for n in (7, 2, 12, 5)]
    pre = torch.stack([torch.cat([torch.zeros(12 - len(w), dtype=torch.long), w]) for w in words])
    post = torch.stack([torch.cat([w, torch.zeros(12 - len(w), dtype=torch.long)]) for w in words])
    y = torch.zeros(4)
    a, _ = model(masked_batch(pre, y))
    b, _ = model(masked_batch(post, y))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for i, w in enumerate(words):  # and equal to the review run alone, unpadded
        alone = masked_batch(w.unsqueeze(0), y[:1])
        torch.testing.assert_close(a[i:i + 1], model(alone)[0], rtol=1e-5, atol=1e-5)

"""The contract every registered variant must satisfy, parametrized over the registry:
a new variant file is tested here with no test edits."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import variants

NAMES = variants.available()
B, T, X, H = 3, 9, 5, 4


def make(name, *, seed=0, dtype=torch.float32, device="cpu", **kw):
    torch.manual_seed(seed)
    return variants.create(name, X, H, **kw).to(device=device, dtype=dtype)


def inputs(seed=1, batch=B, steps=T, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, X, generator=g, dtype=dtype).to(device)
    # Irregular increasing timestamps exercise time-aware cells harder than 0, 1, 2, ...
    times = torch.rand(batch, steps, generator=g, dtype=dtype).mul(2).cumsum(1).to(device)
    return x, times


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_and_state_shapes(name, layers, bidirectional):
    rnn = make(name, num_layers=layers, bidirectional=bidirectional)
    x, times = inputs()
    out, state = rnn(x, times=times)
    d = 2 if bidirectional else 1
    assert out.shape == (B, T, H * d)
    cell = rnn.cells[0]
    assert len(state) == len(cell.state_names)
    for tensor, size in zip(state, cell.state_sizes()):
        assert tensor.shape == (layers * d, B, size)
    # state[0] is h: the forward direction of the top layer ends where the outputs end
    torch.testing.assert_close(out[:, -1, :H], state[0][(layers - 1) * d])


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_receives_a_gradient(name):
    rnn = make(name, num_layers=2, bidirectional=True)
    x, times = inputs()
    out, state = rnn(x, times=times)
    loss = out.pow(2).sum()
    reg = rnn.regularizer(state)
    if reg is not None:
        loss = loss + reg
    loss.backward()
    for pname, p in rnn.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_no_nan_over_500_steps(name):
    rnn = make(name)
    x, _ = inputs(steps=500)
    out, state = rnn(3 * x)  # large inputs, default timestamps
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(s).all() for s in state)
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_single_steps_equal_the_sequence_forward(name):
    rnn = make(name)
    x, times = inputs()
    out, final = rnn(x, times=times)
    cell = rnn.cells[0]
    state = cell.initial_state(B)
    steps = []
    for s in range(T):
        h, state = cell(x[:, s], state, times[:, s] if cell.uses_times else None)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 1), out, rtol=1e-5, atol=1e-5)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layers", [1, 2])
def test_final_state_continues_the_sequence(name, layers):
    rnn = make(name, num_layers=layers).eval()
    x, times = inputs()
    full, final = rnn(x, times=times)
    cut = T // 2
    first, mid = rnn(x[:, :cut], times=times[:, :cut])
    second, final2 = rnn(x[:, cut:], mid, times=times[:, cut:])
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=1e-5, atol=1e-6)
    for a, b in zip(final2, final):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_outputs(name):
    x, times = inputs()
    a, _ = make(name, seed=7, num_layers=2)(x, times=times)
    b, _ = make(name, seed=7, num_layers=2)(x, times=times)
    c, _ = make(name, seed=8, num_layers=2)(x, times=times)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_backward_direction_is_the_cell_on_reversed_time(name):
    rnn = make(name, bidirectional=True)
    x, times = inputs()
    out, _ = rnn(x, times=times)
    backward_cell = rnn.cells[1]
    rev, _ = backward_cell.explicit_sequence(
        x.flip(1).transpose(0, 1), backward_cell.initial_state(B),
        times.flip(1).transpose(0, 1) if backward_cell.uses_times else None)
    torch.testing.assert_close(out[..., H:], rev.flip(0).transpose(0, 1), rtol=1e-5, atol=1e-5)


def _paths():
    return [(n, p) for n in NAMES for p in variants.get(n).paths if p != "explicit"]


@pytest.mark.parametrize("name,path", _paths())
def test_fast_paths_match_the_explicit_reference(name, path):
    """Outputs, final states and gradients of every fast path against the step loop."""
    x, times = inputs()
    results = []
    for p in (path, "explicit"):
        rnn = make(name, num_layers=2, bidirectional=True)
        xi = x.clone().requires_grad_()
        out, state = rnn(xi, times=times, path=p)
        assert rnn.last_path == p
        (out.pow(2).sum() + sum(s.sum() for s in state)).backward()
        results.append((out, state, xi.grad, {k: v.grad for k, v in rnn.named_parameters()}))
    (o1, s1, gx1, gp1), (o2, s2, gx2, gp2) = results
    rtol, atol = variants.get(name).path_tolerance(path)  # the cell's stated tolerance for this path
    torch.testing.assert_close(o1, o2, rtol=rtol, atol=atol)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    torch.testing.assert_close(gx1, gx2, rtol=rtol, atol=atol)
    for key in gp1:  # weight gradients sum over every step and sequence: 10x the rounding
        torch.testing.assert_close(gp1[key], gp2[key], rtol=10 * rtol, atol=atol, msg=key)


def test_a_declared_path_needs_its_method_and_explicit_is_always_declared():
    with pytest.raises(TypeError, match="declares path 'fast' but has no fast_sequence method"):
        class NoFast(variants.Cell):
            name = "no_fast_test"
            paths = ("fast", "explicit")
    with pytest.raises(TypeError, match="must include 'explicit'"):
        class NoExplicit(variants.Cell):
            name = "no_explicit_test"
            paths = ("fast",)

            def fast_sequence(self, x, state, times, lengths=None):
                return None


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    cls = variants.get(name)
    options = getattr(cls, "gradcheck_options", {})
    for path in cls.paths:
        rnn = make(name, dtype=torch.float64, bidirectional=True, **options)
        x, times = inputs(batch=2, steps=4, dtype=torch.float64)
        names = [n for n, p in rnn.named_parameters() if p.requires_grad]
        params = [p.detach().clone().requires_grad_() for n, p in rnn.named_parameters() if p.requires_grad]

        def f(x, *ps):
            out, state = functional_call(rnn, dict(zip(names, ps)), (x,), {"times": times, "path": path})
            return out, state[0]

        assert torch.autograd.gradcheck(f, (x.requires_grad_(), *params), eps=1e-6, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    x, times = inputs()
    cpu_out, _ = make(name)(x, times=times)
    gpu_out, _ = make(name, device="cuda")(x.cuda(), times=times.cuda())
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=1e-4, atol=1e-5)

"""The `fast` sequence path: the whole recurrence as one autograd node with a hand-written BPTT.

The explicit path builds an autograd graph of ~10 nodes per step and replays it backwards;
at the sizes this harness trains (B = 64, H = 64) the per-op overhead of that graph, not the
arithmetic, is most of the time. Here the forward runs the time loop without recording a
graph (writing each step into preallocated buffers), and the backward is its own loop: per
step a few element-wise ops on coefficients precomputed for all steps at once, and one
matmul; weight gradients are one matmul over all steps after the loop. Gradients are exact
(the same derivatives as autograd of the step, up to float rounding): the contract tests
compare them with the explicit path and gradcheck them in float64.

Works on any device and dtype torch supports (no compiler needed).

An optional per-step update weight `mix` m (T, B, H) or (T, B, 1) turns the recurrence into
    state_t = state_{t-1} + m_t ⊙ (cell(state_{t-1}, x_t) - state_{t-1})
(m = 1: the plain cell). A mask of valid steps (sequence lengths: m ∈ {0, 1}) and Phased
LSTM's openness k_t are both this form; the caller computes m with autograd for all steps
and the Function returns dL/dm when m requires a gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from variants.base import step_mask
from variants.kernels import GRUKernel, LSTMKernel, RNNKernel, slots  # noqa: F401 (re-exported)


def sequence(kernel_cls, xp: Tensor, state: tuple[Tensor, ...], params: tuple[Tensor, ...],
             mix: Tensor | None = None, lengths: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """xp (T, B, G) projected inputs, state of (B, H) tensors, optional update weight
    mix (T, B, H|1) and lengths (B,) -> outputs (T, B, H), final state. With lengths, steps
    past a sequence's end keep its state (m = 0 there) and output 0."""
    if xp.shape[0] == 0:
        return xp.new_empty(0, *state[0].shape), state
    valid = None
    if lengths is not None:
        valid = step_mask(lengths, xp.shape[0]).to(xp.dtype)  # (T, B, 1)
        mix = valid if mix is None else mix * valid
    result = _Sequence.apply(kernel_cls, mix, xp, len(state), *state, *params)
    outputs = result[0] if valid is None else result[0] * valid
    return outputs, tuple(result[1:])


class _Sequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel_cls, mix, xp, n_state, *args):
        state, params = args[:n_state], args[n_state:]
        kernel = kernel_cls(*params)
        T, B, _ = xp.shape
        H = state[0].shape[-1]
        kernel.allocate(T, B, xp)
        seqs = [slots(T + 1, B, H, xp) for _ in state]  # state_t at index t (0 = initial)
        for buf, s in zip(seqs, state):
            buf[0] = s
        # With a mix: the cell's own update goes to `new`, the m-blend into the state.
        new = [slots(T, B, H, xp) for _ in state] if mix is not None else None
        views = [buf.unbind(0) for buf in seqs]
        outs = [v[1:] for v in views] if new is None else [n.unbind(0) for n in new]
        xs = xp.unbind(0)
        for t in range(T):
            kernel.step(t, xs[t], tuple(v[t] for v in views), tuple(o[t] for o in outs))
            if new is not None:
                for v, o in zip(views, outs):
                    torch.lerp(v[t], o[t], mix[t], out=v[t + 1])
        ctx.kernel_cls, ctx.n_state, ctx.n_saved = kernel_cls, n_state, len(kernel.saved())
        ctx.save_for_backward(mix, *seqs, *(new or []), *params, *kernel.saved())
        return (seqs[0][1:], *(buf[T].clone() for buf in seqs))

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, *g_final):
        saved = list(ctx.saved_tensors)
        n, n_saved = ctx.n_state, ctx.n_saved
        mix, seqs = saved[0], saved[1:1 + n]
        rest = saved[1 + n:]
        new = rest[:n] if mix is not None else None
        rest = rest[n:] if mix is not None else rest
        params, kept = rest[:len(rest) - n_saved], rest[len(rest) - n_saved:]
        kernel = ctx.kernel_cls(*params)
        kernel.restore(kept)
        T = g_out.shape[0]
        prev = tuple(s[:-1] for s in seqs)  # (T, B, H) states each step started from
        outs = tuple(s[1:] for s in seqs) if new is None else tuple(new)
        kernel.prepare_backward(prev, outs)
        g_steps = g_out.unbind(0)
        d = [g.clone() for g in g_final]  # dL/dstate_T
        d[0] += g_steps[T - 1]
        d_out, d_state = [], []  # per step: grads w.r.t. the cell's outputs / the blended state
        if mix is None:
            for t in range(T - 1, -1, -1):
                d_out.append(d)
                d = kernel.backward_step(t, d, g_steps[t - 1] if t > 0 else None)
        else:
            ms, keep = mix.unbind(0), (1 - mix).unbind(0)  # m and 1 - m per step
            for t in range(T - 1, -1, -1):
                d_state.append(d)
                dm = [x * ms[t] for x in d]  # into the cell's update
                d_out.append(dm)
                through = kernel.backward_step(t, dm, None)
                d = [torch.addcmul(p, keep[t], x) for p, x in zip(through, d)]  # plus (1 - m) d
                if t > 0:
                    d[0] += g_steps[t - 1]
        if kernel.needs_output_grads:
            d_out = tuple(torch.stack(parts[::-1]) for parts in zip(*d_out))  # (T, B, H) each
        dxp, *d_params = kernel.finish(prev, outs, d_out)
        d_mix = None
        if mix is not None and ctx.needs_input_grad[1]:
            d_state = tuple(torch.stack(parts[::-1]) for parts in zip(*d_state))
            d_mix = sum(ds * (o - p) for ds, o, p in zip(d_state, outs, prev))  # (T, B, H)
            if mix.shape[-1] == 1:
                d_mix = d_mix.sum(-1, keepdim=True)
        return (None, d_mix, dxp, None, *d, *d_params)

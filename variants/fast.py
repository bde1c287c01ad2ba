"""The `fast` sequence path: the whole recurrence as one autograd node with a hand-written BPTT.

The explicit path builds an autograd graph of ~10 nodes per step and replays it backwards;
at the sizes this harness trains (B = 64, H = 64) the per-op overhead of that graph, not the
arithmetic, is most of the time. Here the forward runs the time loop without recording a
graph (writing each step into preallocated buffers), and the backward is its own loop: per
step a few element-wise ops on coefficients precomputed for all steps at once, and one
matmul; weight gradients are one matmul over all steps after the loop. Gradients are exact
(the same derivatives as autograd of the step, up to float rounding): the contract tests
compare them with the explicit path and gradcheck them in float64.

Works on any device and dtype torch supports (no compiler needed). Phased LSTM blends each
step with its openness k (T, B, H), which the caller computes with autograd for all steps
(it depends only on time and τ, s, r_on); the Function returns dL/dk.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from variants.kernels import GRUKernel, LSTMKernel, RNNKernel, slots  # noqa: F401 (re-exported)


def sequence(kernel_cls, xp: Tensor, state: tuple[Tensor, ...], params: tuple[Tensor, ...],
             openness: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """xp (T, B, G) projected inputs, state of (B, H) tensors -> outputs (T, B, H), final state."""
    if xp.shape[0] == 0:
        return xp.new_empty(0, *state[0].shape), state
    result = _Sequence.apply(kernel_cls, openness, xp, len(state), *state, *params)
    return result[0], tuple(result[1:])


class _Sequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel_cls, openness, xp, n_state, *args):
        state, params = args[:n_state], args[n_state:]
        kernel = kernel_cls(*params)
        T, B, _ = xp.shape
        H = state[0].shape[-1]
        kernel.allocate(T, B, xp)
        seqs = [slots(T + 1, B, H, xp) for _ in state]  # state_t at index t (0 = initial)
        for buf, s in zip(seqs, state):
            buf[0] = s
        # Phased LSTM: the cell's own update goes to `new`, the k-blend into the state.
        new = [slots(T, B, H, xp) for _ in state] if openness is not None else None
        views = [buf.unbind(0) for buf in seqs]
        outs = [v[1:] for v in views] if new is None else [n.unbind(0) for n in new]
        xs = xp.unbind(0)
        for t in range(T):
            kernel.step(t, xs[t], tuple(v[t] for v in views), tuple(o[t] for o in outs))
            if new is not None:
                for v, o in zip(views, outs):
                    torch.lerp(v[t], o[t], openness[t], out=v[t + 1])
        ctx.kernel_cls, ctx.n_state, ctx.n_saved = kernel_cls, n_state, len(kernel.saved())
        ctx.save_for_backward(openness, *seqs, *(new or []), *params, *kernel.saved())
        return (seqs[0][1:], *(buf[T].clone() for buf in seqs))

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, *g_final):
        saved = list(ctx.saved_tensors)
        n, n_saved = ctx.n_state, ctx.n_saved
        openness, seqs = saved[0], saved[1:1 + n]
        rest = saved[1 + n:]
        new = rest[:n] if openness is not None else None
        rest = rest[n:] if openness is not None else rest
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
        if openness is None:
            for t in range(T - 1, -1, -1):
                d_out.append(d)
                d = kernel.backward_step(t, d, g_steps[t - 1] if t > 0 else None)
        else:
            ks, keep = openness.unbind(0), (1 - openness).unbind(0)  # k and 1 - k per step
            for t in range(T - 1, -1, -1):
                d_state.append(d)
                dk = [x * ks[t] for x in d]  # into the cell's update
                d_out.append(dk)
                through = kernel.backward_step(t, dk, None)
                d = [torch.addcmul(p, keep[t], x) for p, x in zip(through, d)]  # plus (1 - k) d
                if t > 0:
                    d[0] += g_steps[t - 1]
        if kernel.needs_output_grads:
            d_out = tuple(torch.stack(parts[::-1]) for parts in zip(*d_out))  # (T, B, H) each
        dxp, *d_params = kernel.finish(prev, outs, d_out)
        d_open = None
        if openness is not None and ctx.needs_input_grad[1]:
            d_state = tuple(torch.stack(parts[::-1]) for parts in zip(*d_state))
            d_open = sum(ds * (o - p) for ds, o, p in zip(d_state, outs, prev))  # (T, B, H)
        return (None, d_open, dxp, None, *d, *d_params)

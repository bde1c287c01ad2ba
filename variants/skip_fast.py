"""The Skip RNN path that really skips: a loop over update index instead of time.

The masked reference (skip.py) computes the dense candidate S(s_{t-1}, x_t) for every row at
every step and throws it away where u_t = 0. But after an update at step a the increment
Δũ_a = σ(W_p s_a + b_p) alone fixes how many steps are skipped until the next update: ũ
restarts at Δũ_a, grows by Δũ_a per skipped step, and the unit updates at the first step
where round(ũ) = 1 (ũ > 0.5; round(0.5) = 0). So iteration k runs every row's k-th update
at that row's own step τ_b (gathering its precomputed input projection xp[τ_b, b]) and
computes its next update step: about T × (update fraction) iterations instead of T, each
one dense step on all B rows. Outputs are the held states forward-filled in time (one
gather after the loop).

What agrees with the masked reference, and how closely (tests/test_variant_fast.py):
  * the update pattern exactly: the number of skips after an update is read from
    `skip_thresholds`, made by simulating the reference's own float additions ũ + Δũ (the
    count is monotone in Δũ, so it is a searchsorted), and the tests check the update counts
    with torch.equal;
  * outputs and final states (ũ included) within the cell's stated tolerance: every matmul has
    the reference's shapes (all B rows each iteration) and the dense step is the explicit one's;
  * gradients: the reference's straight-through gradients, all terms included (see
    skip_grad.py), within the gradient tolerance.
The initial run (a given ũ_0 < 0.5, or update_gate="never") is simulated step by step;
update_gate="always" is the same loop with no skips. A starting ũ outside [-0.5, 1.5),
where round() is neither 0 nor 1, falls back to the explicit path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from variants import skip_grad
from variants.kernels import slots

_TABLES: dict[tuple, Tensor] = {}
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32,
         torch.float16: torch.int16, torch.bfloat16: torch.int16}


def skip_thresholds(steps: int, dtype: torch.dtype, device) -> Tensor:
    """φ (M,) ascending, M >= steps: after an update with increment Δ a row skips
    #{m : φ_m <= -Δ} steps (searchsorted). -φ_m is the largest Δ whose m-fold sum, added one
    at a time in `dtype` as the reference accumulates ũ, is still <= 0.5. Cached per dtype
    and device (computing it costs ~30 × M tiny ops once)."""
    key = (dtype, str(device))
    table = _TABLES.get(key)
    if table is None or table.numel() < steps:
        size = max(64, 1 << max(0, steps - 1).bit_length())
        table = _TABLES[key] = _thresholds(size, dtype, torch.device(device))
    return table


def _thresholds(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    bits = _BITS[dtype]
    half = torch.tensor(0.5, dtype=dtype, device=device)
    lo = torch.zeros(size, dtype=bits, device=device)  # Δ = 0 never passes 0.5
    hi = half.view(bits).expand(size) + 1  # the float after 0.5 passes it at once
    m = torch.arange(1, size + 1, device=device)
    while bool((hi - lo > 1).any()):  # bisection on the bit patterns (ordered as the floats)
        mid = lo + (hi - lo) // 2
        delta = mid.view(dtype)
        total = delta.clone()
        for i in range(1, size):  # total_m = Δ + Δ + ... (m terms), one rounding per addition
            total = torch.where(m > i, total + delta, total)
        ok = total <= half
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lo.view(dtype).neg()  # θ_m decreases with m, so -θ_m ascends


def sequence(cell, x: Tensor, state: tuple[Tensor, ...]):
    """The compacted path of a SkipMixin cell: x (T, B, input) -> outputs (T, B, H), final state.

    The input projection is done inside (as cell.project), so that its backward can skip
    the rows of skipped steps, whose gradient is zero."""
    mode = cell.options.update_gate
    u_tilde = state[-2]
    if mode == "learned" and not bool(((u_tilde >= -0.5) & (u_tilde < 1.5)).all()):
        return None  # round(ũ) would be neither 0 nor 1: only the reference defines that
    if x.shape[0] == 0:
        return x.new_empty(0, *state[0].shape), state
    n = len(state) - 2
    out = _Compact.apply(cell.fast_kernel, mode, x, n, *state, *cell.input_projection(),
                         cell.update_weight, cell.update_bias, *cell.fast_parameters())
    return out[0], tuple(out[1:])


def initial_run(mode: str, u_tilde: Tensor, delta: Tensor, steps: int):
    """Steps before each row's first update, simulated as the reference does them.

    Returns first (B,) the first update step (steps = none), the ũ_t of the steps simulated
    (L, B, 1), and ũ after the last simulated step (the final ũ of rows that never update)."""
    first = torch.full(u_tilde.shape[:1], steps, dtype=torch.long, device=u_tilde.device)
    if mode == "always":
        return first.zero_(), u_tilde[None], u_tilde
    record, pending = [], torch.ones_like(first, dtype=torch.bool)
    for t in range(steps):
        record.append(u_tilde)
        if mode == "learned":
            starts = pending & (torch.round(u_tilde).view(-1) == 1)
            first = torch.where(starts, t, first)
            pending &= ~starts
            if not bool(pending.any()):
                break
        u_tilde = u_tilde + torch.minimum(delta, 1.0 - u_tilde)  # the reference's ũ update at u = 0
    return first, torch.stack(record), u_tilde


class _Compact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel_cls, mode, x, n, *args):
        dense0, ut0, cnt0 = args[:n], args[n], args[n + 1]
        w_ih, b_ih, w_p, b_p = args[n + 2:n + 6]
        params = args[n + 6:]
        kernel = kernel_cls(*params)
        xp = F.linear(x, w_ih, b_ih)  # (T, B, G) as cell.project
        T, B, G = xp.shape
        H, limit = dense0[0].shape[-1], T * B
        held = [slots(T + 1, B, H, xp) for _ in range(n)]  # slot 0: start; k + 1: after update k
        delta = xp.new_empty(T + 1, B, 1)  # Δũ of each held state
        for buf, s in zip(held, dense0):
            buf[0] = s
        torch.sigmoid(torch.addmm(b_p, dense0[-1], w_p.t()), out=delta[0])
        first, record, run_end = initial_run(mode, ut0, delta[0], T)
        table = skip_thresholds(T, xp.dtype, xp.device) if mode == "learned" else None
        kernel.allocate(T, B, xp)
        views, deltas = [buf.unbind(0) for buf in held], delta.unbind(0)
        ar = torch.arange(B, device=xp.device)
        positions = update_loop(kernel, xp, views, deltas, first, table, w_p, b_p)
        k = len(positions)
        pos_all = torch.stack(positions) if k else first.new_empty(0, B)  # (K, B); >= limit: none
        counts = (pos_all < limit).sum(0)  # (B,) updates per row
        mark = first.new_zeros(limit + 1).index_fill_(0, pos_all.clamp(max=limit).view(-1), 1)
        slot = mark[:limit].view(T, B).cumsum(0)  # (T, B): which held state each step outputs
        if k == T and int(counts.min()) == T:  # every row updated at every step
            out = held[0][1:]
        else:
            out = held[0][slot, ar.expand(T, B)]  # (T, B, H) held states forward-filled in time
        final = [buf[counts, ar] for buf in held]
        u_final = final_u_tilde(pos_all, counts, delta, run_end, T)
        ctx.mode, ctx.kernel_cls, ctx.n, ctx.n_params = mode, kernel_cls, n, len(params)
        ctx.save_for_backward(x, xp, w_ih, w_p, *params, *(h[:k + 1] for h in held), delta[:k + 1],
                              pos_all, slot, counts, record, *(b[:k] for b in kernel.saved()))
        return (out, *final, u_final, cnt0 + counts.unsqueeze(-1).to(cnt0.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, *g_final):
        return (None, None) + skip_grad.backward(ctx, g_out, *g_final)


def update_loop(kernel, xp, views, deltas, first, table, w_p, b_p) -> list[Tensor]:
    """Iteration k runs every row's k-th update; returns each iteration's flat positions
    step * B + row (B,), >= T * B for rows already past their last update."""
    T, B, _ = xp.shape
    limit, xs, xf = T * B, xp.unbind(0), xp.reshape(T * B, -1)
    ar = torch.arange(B, device=xp.device)
    pos = first * B + ar
    # While every row updates at the same step (as at the usual initialisation, where all
    # update every step) xp[step] is read as it is, with no gather and no position tensor math.
    step = int(first[0]) if bool((first == first[0]).all()) else -1
    lockstep = (torch.arange(T, device=xp.device).unsqueeze(1) * B + ar).unbind(0) if step >= 0 else None
    positions = []
    for k in range(T):
        if step >= 0:
            if step >= T:
                break
            pos, xg = lockstep[step], xs[step]
        else:
            if not bool((pos < limit).any()):
                break
            xg = xf.index_select(0, pos.clamp(max=limit - 1))  # (B, G): every row at its own step
        positions.append(pos)
        kernel.step(k, xg, tuple(v[k] for v in views), tuple(v[k + 1] for v in views))
        d = torch.sigmoid(torch.addmm(b_p, views[-1][k + 1], w_p.t()), out=deltas[k + 1])  # (B, 1)
        # skip as many steps as the reference's ũ takes to pass 0.5 (none when forced on)
        skips = None if table is None else torch.searchsorted(table, d.view(-1).neg(), right=True)
        if step >= 0:
            high = 0 if skips is None else int(skips.max())  # one sync; all 0 at full updates
            if high == 0 or high == int(skips.min()):
                step += 1 + high
                continue
            step = -1
        pos = pos + B if skips is None else torch.add(pos, skips, alpha=B).add_(B)
    return positions


def final_u_tilde(pos_all: Tensor, counts: Tensor, delta: Tensor, run_end: Tensor, T: int) -> Tensor:
    """ũ_T: Δũ of the last update plus one reference ũ update per step skipped after it."""
    B = counts.shape[0]
    if pos_all.shape[0] == 0:
        return run_end
    ar = torch.arange(B, device=counts.device)
    last = pos_all[(counts - 1).clamp(min=0), ar] // B  # (B,) step of each row's last update
    rem = torch.where(counts > 0, T - 1 - last, 0)  # steps skipped after it
    d = delta[counts, ar]  # (B, 1)
    u = d.clone()
    for i in range(int(rem.max())):
        u = torch.where((rem > i).unsqueeze(-1), u + torch.minimum(d, 1.0 - u), u)
    return torch.where((counts > 0).unsqueeze(-1), u, run_end)

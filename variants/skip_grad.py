"""Exact backward of the compacted Skip RNN path (skip_fast.py), by update index.

The reference step t (skip.py) with u_t = STE(round(ũ_t)), state s, candidate S_t:
    s_t = s_{t-1} + u_t (S_t - s_{t-1});  Δ_t = σ(W_p s_t + b_p)
    ũ_{t+1} = u_t Δ_t + (1 - u_t)(ũ_t + min(Δ_t, 1 - ũ_t));  count += u_t
Reverse mode, with d_t = dL/dũ_t, D_t = S_t - s_{t-1}, δs_t the total gradient into s_t:
    δΔ_t = d_{t+1} w_t,                     w_t = u_t + (1 - u_t) m1_t
    δu_t = d_{t+1} e_t + δcount + <δs_t, D_t>,  e_t = Δ_t - (ũ_t + min(Δ_t, 1 - ũ_t))
    d_t  = λ δu_t + d_{t+1} (1 - u_t) m1_t   (λ = 1 for the learned gate, 0 when forced)
with m1_t min's gradient share for Δ (1, 0, or 1/2 on a tie, as torch.minimum). A held
state s^(j) serves every step of its segment (its update step, then the skipped ones), so
    δs_t = Gcum_t + I_j + W_p σ'_j Q_t
with Gcum_t the output gradients from t to the segment's end, I_j what the next update
sends back into s^(j), Q_t = Σ_{t' >= t in segment} δΔ_t'. So (d, Q) follows a 2x2 linear
recurrence inside a segment: y_t = M_t y_{t+1} + (λ(δcount + <Gcum_t, D_t> + <I_j, D_t>), 0).
Walking all segments at once position by position (as many iterations as the longest
segment, each on the rows still inside their segment), every segment reduces to
    (d, Q) at its start = Π_j (d at its end, 0) + C_j + E_j I_j.
The serial loop then runs over update index like the forward: per segment that affine map
and one dense backward step (kernels.py) turning δs^(j) into I_{j-1}. Candidates at skipped
steps enter only as values (their weight u = 0 stops their own gradient) and are computed
batched, one call per position.

The backward runs in phases, one function each: `_segments` (where each held state is held),
`_output_sums` (output gradients per segment), `_step_maps` (the 2x2 map M_t of every step),
`_segment_maps` (their products along each segment: Π, C, E), `_serial` (the loop over update
index), and `_parameter_grads`.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor


@dataclasses.dataclass
class _Saved:
    """What the forward saved, by name (skip_fast._Compact.forward)."""

    x: Tensor  # (T, B, input) inputs
    xp: Tensor  # (T, B, G) projected inputs
    w_ih: Tensor
    w_p: Tensor  # (1, H) update-probability weights
    params: tuple  # the dense kernel's parameters
    held: tuple  # per state component (K+1, B, H): the held states, slot 0 = the initial one
    delta: Tensor  # (K+1, B, 1) Δũ of each held state
    pos_all: Tensor  # (K, B) flat position step * B + row of each update (>= T*B: none)
    slot: Tensor  # (T, B) which held state each step outputs
    counts: Tensor  # (B,) updates per row
    record: Tensor  # (L, B, 1) ũ_t simulated before each row's first update
    kept: list  # the kernel's buffers of the K update steps


def _saved(ctx) -> _Saved:
    s, n, m = list(ctx.saved_tensors), ctx.n, ctx.n_params
    rest = s[4 + m:]
    return _Saved(s[0], s[1], s[2], s[3], tuple(s[4:4 + m]), tuple(rest[:n]), *rest[n:n + 5], list(rest[n + 5:]))


@dataclasses.dataclass
class _Segments:
    """Slot j is held on steps [start_j, start_j + length_j) of its row; rows of (K+1)*B."""

    start: Tensor  # ((K+1)*B,)
    length: Tensor
    col: Tensor  # the batch row of each slot row
    first_slot: Tensor  # bool: slot 0 (the initial state)
    u_at_start: Tensor  # ũ at each slot's first step
    live_rows: list  # per position p: the slot rows whose segment reaches p
    bounds: list  # offsets of each position's block in the flat step list


def _segments(sv: _Saved, T: int, B: int, dtype) -> _Segments:
    K, dev = sv.held[0].shape[0] - 1, sv.xp.device
    steps = sv.pos_all // B  # (K, B) step of each update
    alive = torch.arange(K + 1, device=dev).unsqueeze(1) <= sv.counts  # (K+1, B)
    start = torch.cat([steps.new_zeros(1, B), steps])  # slot j > 0 starts at its update
    end = torch.where(alive[1:], steps, T) if K else steps.new_empty(0, B)
    end = torch.cat([end, steps.new_full((1, B), T)])
    length = torch.where(alive, end.clamp(max=T) - start, 0).view(-1)
    start, dsq = start.view(-1), sv.delta.view(-1)
    col = torch.arange(B, device=dev).repeat(K + 1)
    first_slot = torch.arange((K + 1) * B, device=dev) < B
    # ũ at each slot's update step, before it (from the previous slot's run or the initial run)
    initial = sv.record[..., 0]  # (L, B)
    prev = (torch.arange((K + 1) * B, device=dev) - B).clamp(min=0)
    ran = (start - start[prev]).to(dtype) * dsq[prev]
    u_at_start = torch.where(prev < B, initial[start.clamp(max=initial.shape[0] - 1), col], ran)
    live_rows = [torch.nonzero(length > p).squeeze(1) for p in range(int(length.max()))]
    bounds = [0]
    for q in live_rows:
        bounds.append(bounds[-1] + q.numel())
    return _Segments(start, length, col, first_slot, u_at_start, live_rows, bounds)


def _output_sums(g_out: Tensor, seg: _Segments, B: int, H: int):
    """Output gradients summed from each position to the end of its segment (reverse walk):
    per position (rows live there, H), and per segment in total ((K+1)*B, H)."""
    g_flat = g_out.reshape(-1, H)
    acc = g_out.new_zeros(seg.start.numel(), H)
    gcum = [None] * len(seg.live_rows)
    for p in range(len(seg.live_rows) - 1, -1, -1):
        q = seg.live_rows[p]
        acc.index_add_(0, q, g_flat.index_select(0, (seg.start[q] + p) * B + seg.col[q]))
        gcum[p] = acc.index_select(0, q)
    return gcum, acc


def _step_maps(ctx, sv: _Saved, seg: _Segments, gcum, g_cnt, s_all, lam: float, B: int, H: int):
    """Every step at once, listed by position within its segment: the 2x2 map M_t taking
    (d_{t+1}, Q_{t+1}) to (d_t, Q_t), its constant part r_t and the differences D_t."""
    T, _, G = sv.xp.shape
    dtype = sv.xp.dtype
    Q = torch.cat(seg.live_rows)  # (N = T*B,) the slot row of each step
    pos = torch.cat([torch.full_like(q, p) for p, q in enumerate(seg.live_rows)])
    dsq = sv.delta.view(-1)
    d_q, cq = dsq[Q], seg.col[Q]
    upd = (pos == 0) & ~seg.first_slot[Q]  # position 0 of a slot j > 0 is its update step
    initial = sv.record[..., 0]
    run = torch.where(pos == 0, seg.u_at_start[Q], pos * d_q)  # ũ after p skips ≈ p Δ (to float rounding)
    ut = torch.where(seg.first_slot[Q], initial[pos.clamp(max=initial.shape[0] - 1), cq], run)
    u = upd.to(dtype)
    other = 1.0 - ut
    m1 = (d_q < other).to(dtype) + 0.5 * (d_q == other).to(dtype)  # min's gradient share for Δ
    keep = (1 - u) * m1
    w = u + keep
    P, lb, r, D = keep, torch.zeros_like(keep), None, None
    if lam:
        D = step_differences(ctx.kernel_cls, sv.params, sv.xp.reshape(T * B, G), s_all, Q, upd,
                             (seg.start[Q] + pos) * B + cq, B, H)
        sig = dsq * (1 - dsq)  # σ' of each slot's Δ
        lb = sig[Q] * (D[:, -H:] @ sv.w_p.t()).squeeze(1)  # σ' <W_p, D^last>
        P = d_q - (ut + torch.minimum(d_q, other)) + keep + lb * w  # e + keep + λ β w
        r = g_cnt[cq, 0] + (torch.cat(gcum) * D[:, :H]).sum(-1)
    M = torch.stack([torch.stack([P, lb], -1), torch.stack([w, torch.ones_like(w)], -1)], -2)  # (N, 2, 2)
    return Q, M, r, D


def _segment_maps(seg: _Segments, Q, M, r, D, Hs: int, lam: float, like: Tensor):
    """Per segment: Π = the product of its maps (first column kept), C its constant part and
    E its dependence on what the next update sends back, so that (d, Q) at the segment's
    start = Π (d at its end, 0) + C + E I."""
    rows, dtype, dev = seg.start.numel(), like.dtype, like.device
    live, bounds = seg.live_rows, seg.bounds
    n0 = bounds[1] if len(bounds) > 1 else 0  # position 0 starts every segment: Ψ = identity there
    psi = torch.eye(2, dtype=dtype, device=dev).expand(rows, 2, 2).contiguous()
    if n0:
        psi.index_copy_(0, live[0], M[:n0])
    psi_steps = torch.empty_like(M[n0:])  # Ψ before each position >= 1
    for p in range(1, len(live)):
        q, lo, hi = live[p], bounds[p] - n0, bounds[p + 1] - n0
        here = psi.index_select(0, q)
        psi_steps[lo:hi] = here
        psi.index_copy_(0, q, torch.bmm(here, M[bounds[p]:bounds[p + 1]]))
    C, E = like.new_zeros(rows, 2), None
    if lam:
        E = like.new_zeros(rows, 2, Hs)
        if n0:  # position 0: Ψ's first column is (1, 0)
            C[:, 0].index_copy_(0, live[0], r[:n0])
            E[:, 0].index_copy_(0, live[0], D[:n0])
        if Q.numel() > n0:
            first_col = psi_steps[:, :, 0]  # (N - n0, 2)
            C.index_add_(0, Q[n0:], first_col * r[n0:].unsqueeze(1))
            E.index_add_(0, Q[n0:], first_col.unsqueeze(-1) * D[n0:].unsqueeze(1))
    return psi[:, :, 0], C, E


def _serial(ctx, sv: _Saved, pi0, C, E, gsum, g_dense, g_ut, lam: float, B: int, H: int, Hs: int):
    """The serial part, over update index, last segment first: per segment its affine map,
    then one dense backward step turning δs^(j) into I_{j-1}. Returns dL/dΔ per slot (K+1, B, 1),
    the grads w.r.t. each update's outputs, the initial dense state and the initial ũ."""
    K = sv.held[0].shape[0] - 1
    kernel = ctx.kernel_cls(*sv.params)
    prev_states, new_states = tuple(h[:K] for h in sv.held), tuple(h[1:] for h in sv.held)
    if K:
        kernel.restore(sv.kept)
        kernel.prepare_backward(prev_states, new_states)
    alive = torch.arange(K + 1, device=sv.xp.device).unsqueeze(1) <= sv.counts  # (K+1, B)
    pi0 = pi0.reshape(K + 1, B, 2).unbind(0)
    Cs, gs = C.view(K + 1, B, 2).unbind(0), gsum.view(K + 1, B, H).unbind(0)
    Es = E.view(K + 1, B, 2, Hs).unbind(0) if lam else None
    sig = sv.delta * (1 - sv.delta)
    sws, acts = (sig * sv.w_p).unbind(0), alive.unsqueeze(-1).unbind(0)  # σ'_j W_p
    everyone = int(sv.counts.min())  # slots up to here are alive in every row: no masking
    zero = sv.xp.new_zeros(())
    I = torch.cat(g_dense, -1)  # (B, Hs) gradient entering the current held state from later
    d = g_ut
    qs, d_outs, parts = [], [], None
    for j in range(K, -1, -1):
        y = torch.addcmul(Cs[j], pi0[j], d)  # (B, 2): (d, Q) at the segment's start
        if lam:
            y += torch.bmm(Es[j], I.unsqueeze(-1)).squeeze(-1)
        q = y[:, 1:]  # dL/dΔ of slot j, summed over its segment
        if Hs > H:  # through Δ = σ(W_p s + b_p) into the last state component
            parts = [gs[j] + I[:, :H], torch.addcmul(I[:, H:], q, sws[j])]
        else:
            parts = [torch.addcmul(gs[j] + I, q, sws[j])]
        if j > everyone:
            parts, q = [torch.where(acts[j], p, zero) for p in parts], torch.where(acts[j], q, zero)
        qs.append(q)
        if j > 0:
            d_outs.append(parts)
            back = kernel.backward_step(j - 1, parts, None)
            back = torch.cat(back, -1) if Hs > H else back[0]
            I = back if j <= everyone else torch.where(acts[j], back, I)
        d = y[:, :1] if j <= everyone else torch.where(acts[j], y[:, :1], d)
    return torch.stack(qs[::-1]), d_outs, parts, d, kernel, prev_states, new_states


def _parameter_grads(sv: _Saved, q_delta, d_outs, kernel, prev_states, new_states, T: int, B: int):
    """Grads of W_p, b_p (through every slot's Δ), and of the input projection and the dense
    kernel (through the update steps only: a skipped step's candidate has weight u = 0)."""
    K, G = sv.held[0].shape[0] - 1, sv.xp.shape[-1]
    g_pre = sv.delta * (1 - sv.delta) * q_delta  # dL/d(W_p s + b_p) per slot (K+1, B, 1)
    d_wp = (g_pre * sv.held[-1]).sum((0, 1)).unsqueeze(0)  # (1, H)
    d_bp = g_pre.sum().view(1)
    x, limit = sv.x, T * B
    d_x, d_wih, d_bih = torch.zeros_like(x), torch.zeros_like(sv.w_ih), sv.xp.new_zeros(G)
    d_params = [torch.zeros_like(p) for p in sv.params]
    if K:
        d_out = tuple(torch.stack(p[::-1]) for p in zip(*d_outs)) if kernel.needs_output_grads else None
        dxs, *d_params = kernel.finish(prev_states, new_states, d_out)
        dxs = dxs.reshape(K * B, G)
        d_bih = dxs.sum(0)
        every_step = torch.arange(1, T + 1, device=x.device).unsqueeze(1)
        if K == T and bool((sv.slot == every_step).all()):
            rows = x.reshape(limit, -1)  # every row updated at every step: no gather, no scatter
            d_wih, d_x = dxs.t().mm(rows), dxs.mm(sv.w_ih).view_as(x)
        else:
            at = sv.pos_all.clamp(max=limit - 1).view(-1)  # rows of finished slots carry zero grads
            d_wih = dxs.t().mm(x.reshape(limit, -1).index_select(0, at))
            d_x = x.new_zeros(limit, x.shape[-1]).index_add_(0, at, dxs.mm(sv.w_ih)).view_as(x)
    return d_x, d_wih, d_bih, d_wp, d_bp, d_params


def backward(ctx, g_out, *g_final):
    """Gradients of _Compact.forward's inputs (after kernel_cls and mode), in their order."""
    n, sv = ctx.n, _saved(ctx)
    g_dense, g_ut, g_cnt = g_final[:n], g_final[n], g_final[n + 1]
    T, B, _ = sv.xp.shape
    H = sv.held[0].shape[-1]
    lam = 1.0 if ctx.mode == "learned" else 0.0
    K = sv.held[0].shape[0] - 1
    s_all = torch.cat(sv.held, -1).reshape((K + 1) * B, -1)  # held states, components side by side
    Hs = s_all.shape[-1]
    seg = _segments(sv, T, B, sv.xp.dtype)
    gcum, gsum = _output_sums(g_out, seg, B, H)
    Q, M, r, D = _step_maps(ctx, sv, seg, gcum, g_cnt, s_all, lam, B, H)
    pi0, C, E = _segment_maps(seg, Q, M, r, D, Hs, lam, sv.xp)
    q_delta, d_outs, ds, d, kernel, prev_states, new_states = _serial(
        ctx, sv, pi0, C, E, gsum, g_dense, g_ut, lam, B, H, Hs)
    d_x, d_wih, d_bih, d_wp, d_bp, d_params = _parameter_grads(sv, q_delta, d_outs, kernel, prev_states,
                                                               new_states, T, B)
    return (d_x, None, *ds, d, g_cnt, d_wih, d_bih, d_wp, d_bp, *d_params)


def step_differences(kernel_cls, params, xf, s_all, q, upd, steps, B, H):
    """D = S_t - s_{t-1} for the steps of slot rows q at flat steps `steps`: the update
    itself (s^(j) - s^(j-1)) at an update step, else the candidate the reference computed
    and discarded there (n, Hs)."""
    D = s_all.new_empty(q.numel(), s_all.shape[1])
    at = torch.nonzero(upd).squeeze(1)
    if at.numel():
        diff = s_all[B:] - s_all[:-B]  # s^(j) - s^(j-1) of every slot j >= 1
        D.index_copy_(0, at, diff.index_select(0, q.index_select(0, at) - B))
    skip = torch.nonzero(~upd).squeeze(1)
    if skip.numel():
        state = s_all.index_select(0, q.index_select(0, skip))
        cand = candidates(kernel_cls, params, xf.index_select(0, steps.index_select(0, skip)), state, H)
        D.index_copy_(0, skip, cand - state)
    return D


def candidates(kernel_cls, params, xg, state, H, chunk=1024):
    """S(s, x) for N independent rows (N, Hs), in chunks that stay in cache."""
    kernel = kernel_cls(*params)
    parts = [torch.cat(kernel.candidate(xg[i:i + chunk], state[i:i + chunk].split(H, -1)), -1)
             for i in range(0, xg.shape[0], chunk)]
    return torch.cat(parts) if len(parts) > 1 else parts[0]

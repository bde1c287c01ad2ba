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
"""
from __future__ import annotations

import torch


def backward(ctx, g_out, *g_final):
    n, mode = ctx.n, ctx.mode
    saved = list(ctx.saved_tensors)
    x, xp, w_ih, w_p, params = saved[0], saved[1], saved[2], saved[3], saved[4:4 + ctx.n_params]
    rest = saved[4 + ctx.n_params:]
    held, (delta, pos_all, slot, counts, record), kept = rest[:n], rest[n:n + 5], rest[n + 5:]
    g_dense, g_ut, g_cnt = g_final[:n], g_final[n], g_final[n + 1]
    T, B, G = xp.shape
    H, K, limit, dtype = held[0].shape[-1], held[0].shape[0] - 1, T * B, xp.dtype
    lam = 1.0 if mode == "learned" else 0.0
    dev = xp.device
    s_all = torch.cat(held, -1).reshape((K + 1) * B, -1)  # held states, components side by side
    Hs = s_all.shape[-1]

    # -- segments: slot j is held on [start_j, start_j + length_j), rows of (K+1)*B -------
    steps = pos_all // B  # (K, B) step of each update
    alive = torch.arange(K + 1, device=dev).unsqueeze(1) <= counts  # (K+1, B)
    start = torch.cat([steps.new_zeros(1, B), steps])  # slot j > 0 starts at its update
    end = torch.where(alive[1:], steps, T) if K else steps.new_empty(0, B)
    end = torch.cat([end, steps.new_full((1, B), T)])
    length = torch.where(alive, end.clamp(max=T) - start, 0).view(-1)
    start, dsq = start.view(-1), delta.view(-1)  # Δ of each slot
    col = torch.arange(B, device=dev).repeat(K + 1)
    first_slot = torch.arange((K + 1) * B, device=dev) < B
    # ũ at each slot's update step, before it (from the previous slot's run or the initial run)
    initial = record[..., 0]  # (L, B) ũ_t simulated before the first update
    prev = (torch.arange((K + 1) * B, device=dev) - B).clamp(min=0)
    ran = (start - start[prev]).to(dtype) * dsq[prev]
    ub = torch.where(prev < B, initial[start.clamp(max=initial.shape[0] - 1), col], ran)

    g_flat = g_out.reshape(limit, H)
    live_rows = [torch.nonzero(length > p).squeeze(1) for p in range(int(length.max()))]
    # output gradients summed from each position to the end of its segment (reverse walk)
    acc = xp.new_zeros((K + 1) * B, H)
    gcum = [None] * len(live_rows)
    for p in range(len(live_rows) - 1, -1, -1):
        q = live_rows[p]
        acc.index_add_(0, q, g_flat.index_select(0, (start[q] + p) * B + col[q]))
        gcum[p] = acc.index_select(0, q)
    gsum = acc  # ((K+1)*B, H): a segment's output gradients

    # -- every step at once, listed by position within its segment --------------------------
    Q = torch.cat(live_rows)  # (N = T*B,) the slot row of each step
    N = Q.numel()
    pos = torch.cat([torch.full_like(q, p) for p, q in enumerate(live_rows)])
    bounds = [0]
    for q in live_rows:
        bounds.append(bounds[-1] + q.numel())
    d_q, cq = dsq[Q], col[Q]
    upd = (pos == 0) & ~first_slot[Q]  # position 0 of a slot j > 0 is its update step
    run = torch.where(pos == 0, ub[Q], pos * d_q)  # ũ after p skips ≈ p Δ (to float rounding)
    ut = torch.where(first_slot[Q], initial[pos.clamp(max=initial.shape[0] - 1), cq], run)
    u = upd.to(dtype)
    other = 1.0 - ut
    m1 = (d_q < other).to(dtype) + 0.5 * (d_q == other).to(dtype)
    keep = (1 - u) * m1
    w = u + keep
    P, lb = keep, torch.zeros_like(keep)
    sig = dsq * (1 - dsq)  # σ' of each slot's Δ
    if lam:
        D = step_differences(ctx.kernel_cls, params, xp.reshape(limit, G), s_all, Q, upd,
                             (start[Q] + pos) * B + cq, B, H)
        lb = sig[Q] * (D[:, -H:] @ w_p.t()).squeeze(1)  # σ' <W_p, D^last>
        P = d_q - (ut + torch.minimum(d_q, other)) + keep + lb * w  # e + keep + λ β w
        r = g_cnt[cq, 0] + (torch.cat(gcum) * D[:, :H]).sum(-1)
    M = torch.stack([torch.stack([P, lb], -1), torch.stack([w, torch.ones_like(w)], -1)], -2)  # (N, 2, 2)

    # -- Ψ: products of the maps before each position, walked along the segments ---------------
    # Position 0 starts every segment (Ψ = identity there): only positions >= 1 need products.
    n0 = bounds[1] if len(bounds) > 1 else 0
    psi = torch.eye(2, dtype=dtype, device=dev).expand((K + 1) * B, 2, 2).contiguous()
    if n0:
        psi.index_copy_(0, live_rows[0], M[:n0])
    psi_steps = torch.empty_like(M[n0:])
    for p in range(1, len(live_rows)):
        q, lo, hi = live_rows[p], bounds[p] - n0, bounds[p + 1] - n0
        here = psi.index_select(0, q)
        psi_steps[lo:hi] = here
        psi.index_copy_(0, q, torch.bmm(here, M[bounds[p]:bounds[p + 1]]))
    C = xp.new_zeros((K + 1) * B, 2)
    E = None
    if lam:
        E = xp.new_zeros((K + 1) * B, 2, Hs)
        if n0:  # position 0: Ψ's first column is (1, 0)
            C[:, 0].index_copy_(0, live_rows[0], r[:n0])
            E[:, 0].index_copy_(0, live_rows[0], D[:n0])
        if N > n0:
            first_col = psi_steps[:, :, 0]  # (N - n0, 2)
            C.index_add_(0, Q[n0:], first_col * r[n0:].unsqueeze(1))
            E.index_add_(0, Q[n0:], first_col.unsqueeze(-1) * D[n0:].unsqueeze(1))

    # -- the serial part: over update index, last segment first -------------------------------
    kernel = ctx.kernel_cls(*params)
    prev_states, new_states = tuple(h[:K] for h in held), tuple(h[1:] for h in held)
    if K:
        kernel.restore(list(kept))
        kernel.prepare_backward(prev_states, new_states)
    pi0 = psi[:, :, 0].reshape(K + 1, B, 2).unbind(0)
    Cs, gs = C.view(K + 1, B, 2).unbind(0), gsum.view(K + 1, B, H).unbind(0)
    Es = E.view(K + 1, B, 2, Hs).unbind(0) if lam else None
    sws, acts = (sig.view(K + 1, B, 1) * w_p).unbind(0), alive.unsqueeze(-1).unbind(0)  # σ'_j W_p
    everyone = int(counts.min())  # slots up to here are alive in every row: no masking
    zero = xp.new_zeros(())
    I = torch.cat(g_dense, -1)  # (B, Hs) gradient entering the current held state from later
    d = g_ut
    qs, d_outs = [], []
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
            back = torch.cat(kernel.backward_step(j - 1, parts, None), -1) if Hs > H else \
                kernel.backward_step(j - 1, parts, None)[0]
            I = back if j <= everyone else torch.where(acts[j], back, I)
        d = y[:, :1] if j <= everyone else torch.where(acts[j], y[:, :1], d)
    ds = parts  # dL/d(initial dense state)

    g_pre = sig.view(K + 1, B, 1) * torch.stack(qs[::-1])  # dL/d(W_p s + b_p) per slot
    d_wp = (g_pre * held[-1]).sum((0, 1)).unsqueeze(0)  # (1, H)
    d_bp = g_pre.sum().view(1)
    d_x, d_wih, d_bih = torch.zeros_like(x), torch.zeros_like(w_ih), xp.new_zeros(G)
    d_params = [torch.zeros_like(p) for p in params]
    if K:
        d_out = tuple(torch.stack(p[::-1]) for p in zip(*d_outs)) if kernel.needs_output_grads else None
        dxs, *d_params = kernel.finish(prev_states, new_states, d_out)
        # only update steps reach the projection (a skipped step's candidate has weight u = 0)
        dxs = dxs.reshape(K * B, G)
        d_bih = dxs.sum(0)
        if K == T and bool((slot == torch.arange(1, T + 1, device=dev).unsqueeze(1)).all()):
            rows = x.reshape(limit, -1)  # every row updated at every step: no gather, no scatter
            d_wih, d_x = dxs.t().mm(rows), dxs.mm(w_ih).view_as(x)
        else:
            at = pos_all.clamp(max=limit - 1).view(-1)  # rows of finished slots carry zero grads
            d_wih = dxs.t().mm(x.reshape(limit, -1).index_select(0, at))
            d_x = x.new_zeros(limit, x.shape[-1]).index_add_(0, at, dxs.mm(w_ih)).view_as(x)
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

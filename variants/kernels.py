"""Per-step kernels of the dense cells for the `fast` paths (see fast.py and skip_fast.py).

A kernel runs one step of a cell on rows that need not be a whole batch, writing what its
backward needs into buffers indexed by the step slot `t`, and knows its own backward:

  step(t, xg, prev, out)          forward of slot t: xg (n, G) projected input, prev/out tuples of (n, H)
  prepare_backward(prev, new)     backward coefficients for all slots at once (vectorised)
  backward_step(t, d, add)        grads w.r.t. the step outputs d -> grads w.r.t. prev (one matmul)
  finish(prev, new, d_out)        (dxp, *parameter grads) for all slots at once

Everything a backward step needs that does not depend on the incoming gradient is computed
once for all steps in `prepare_backward` (one vectorised op per coefficient), so the serial
backward loop is a handful of element-wise ops and one matmul per step; the weight gradient
is one big matmul over all steps after the loop.
"""
from __future__ import annotations

import torch
from torch import Tensor


def slots(count: int, rows: int, cols: int, like: Tensor) -> Tensor:
    """An uninitialised (count, rows, cols) buffer whose every slot starts 64-byte aligned.

    MKL's small matmuls round differently for misaligned operands, so a step reading or
    writing an unaligned slot of a packed buffer can differ from the explicit step (whose
    tensors are all fresh, aligned allocations) in the last bit. Aligned slots keep the
    fast paths' rounding that of the explicit step (the contract is agreement within a
    tolerance; this only makes agreement tighter); at the usual sizes (B·H a multiple of 16)
    no padding is needed and the buffer is contiguous."""
    size = rows * cols
    per = 64 // like.element_size()
    padded = -(-size // per) * per
    return like.new_empty(count, padded)[:, :size].view(count, rows, cols)


class LSTMKernel:
    """i, f, g, o gates (torch.nn order), as LSTM.step.

    Backward coefficients (per step, from the LSTM equations; σ' = a (1 - a), tanh' = 1 - a²):
      gate_grad[:, 0]  ∂c_t/∂i_pre = g_t σ'(i_t)           (times dL/dc_t)
      gate_grad[:, 1]  ∂c_t/∂f_pre = c_{t-1} σ'(f_t)       (times dL/dc_t)
      gate_grad[:, 2]  ∂c_t/∂g_pre = i_t (1 - g_t²)        (times dL/dc_t)
      gate_grad[:, 3]  ∂h_t/∂o_pre = tanh(c_t) σ'(o_t)     (times dL/dh_t)
      dh_to_dc         ∂h_t/∂c_t  = o_t (1 - tanh²(c_t))   (dL/dc_t += dL/dh_t · this)
      dc_to_prev       ∂c_t/∂c_{t-1} = f_t                 (dL/dc_{t-1} = dL/dc_t · this)

    Per-step views of the buffers are made once with unbind (one call for all steps):
    slicing inside the loop would cost more than the element-wise ops it feeds."""

    n_state = 2
    needs_output_grads = False

    def __init__(self, w_hh: Tensor):
        self.w = w_hh  # (4H, H)
        self.wt = w_hh.t()
        self.H = w_hh.shape[1]

    def allocate(self, count: int, rows: int, like: Tensor) -> None:
        self.restore([slots(count, rows, 4 * self.H, like),  # i, f, tanh(g), o
                      slots(count, rows, self.H, like)])  # tanh(c_t)
        a, H = self.acts, self.H
        self._a, self._tc = a.unbind(0), self.tc.unbind(0)
        self._i, self._f = a[..., :H].unbind(0), a[..., H:2 * H].unbind(0)
        self._g, self._o = a[..., 2 * H:3 * H].unbind(0), a[..., 3 * H:].unbind(0)

    def saved(self) -> list[Tensor]:
        return [self.acts, self.tc]

    def restore(self, saved: list[Tensor]) -> None:
        self.acts, self.tc = saved

    def step(self, t: int, xg: Tensor, prev, out) -> None:
        (h, c), (h_out, c_out) = prev, out
        torch.addmm(xg, h, self.wt, out=self._a[t])  # (n, 4H) pre-activations
        self._activate(t, c, c_out)
        self._o[t].sigmoid_()
        torch.mul(self._o[t], torch.tanh(c_out, out=self._tc[t]), out=h_out)

    def _activate(self, t: int, c: Tensor, c_out: Tensor) -> None:
        """i, f, g activations and c_t = f c_{t-1} + i g (o is left as a pre-activation)."""
        self._i[t].sigmoid_()  # gate by gate: each on its own contiguous (n, H)
        self._f[t].sigmoid_()
        g = self._g[t].tanh_()
        torch.mul(self._f[t], c, out=c_out)
        c_out.add_(self._i[t] * g)

    def candidate(self, xg: Tensor, prev) -> tuple[Tensor, Tensor]:
        """One step on a large batch of independent rows, for throughput (no buffers kept;
        rounding may differ from `step` in the last bit)."""
        (h, c), H = prev, self.H
        pre = torch.addmm(xg, h, self.wt)  # (n, 4H)
        a = torch.sigmoid(pre)  # one flat pass for i, f, o (g's slot unused)
        c = a[:, H:2 * H] * c + a[:, :H] * torch.tanh(pre[:, 2 * H:3 * H])
        return a[:, 3 * H:] * torch.tanh(c), c

    def prepare_backward(self, prev, new) -> None:
        """prev/new: (h, c) stacks (S, n, H) the slots started from / produced."""
        S, n, H = self.tc.shape
        a = self.acts.view(S, n, 4, H)
        i, f, g, o = a.unbind(2)  # (S, n, H) each
        gate_grad = torch.mul(a, a)
        torch.sub(a, gate_grad, out=gate_grad)  # σ' = a (1 - a) for the sigmoid gates (slot 2 is rewritten)
        gate_grad[:, :, 0].mul_(g)
        gate_grad[:, :, 1].mul_(prev[1])
        torch.addcmul(one(g), g, g, value=-1, out=gate_grad[:, :, 2]).mul_(i)
        gate_grad[:, :, 3].mul_(self.tc)
        self.gate_grad = gate_grad
        self.dh_to_dc = torch.addcmul(one(g), self.tc, self.tc, value=-1).mul_(o)
        self.dc_to_prev = f
        self.dgates = torch.empty_like(gate_grad)  # (S, n, 4, H) grads of the pre-activations
        self.views()

    def views(self) -> None:
        """Per-step views of the backward coefficients (after any subclass adjusted them)."""
        S, n, _, H = self.dgates.shape
        self._cgrad, self._ograd = self.gate_grad[:, :, :3].unbind(0), self.gate_grad[:, :, 3].unbind(0)
        self._dh_to_dc, self._dc_to_prev = self.dh_to_dc.unbind(0), self.dc_to_prev.unbind(0)
        self._dg3, self._dgo = self.dgates[:, :, :3].unbind(0), self.dgates[:, :, 3].unbind(0)
        self._dg = self.dgates.view(S, n, 4 * H).unbind(0)

    def backward_step(self, t: int, d, add: Tensor | None):
        dh, dc = d
        dc = torch.addcmul(dc, dh, self._dh_to_dc[t])  # total dL/dc_t
        torch.mul(self._cgrad[t], dc.unsqueeze(1), out=self._dg3[t])  # i, f, g see dc
        torch.mul(self._ograd[t], dh, out=self._dgo[t])  # o sees dh
        dg = self._dg[t]  # (n, 4H)
        dh_prev = torch.mm(dg, self.w) if add is None else torch.addmm(add, dg, self.w)
        return dh_prev, dc.mul_(self._dc_to_prev[t])

    def finish(self, prev, new, d_out):
        S, n = self.dgates.shape[:2]
        dxp = self.dgates.view(S, n, 4 * self.H)
        dw = dxp.reshape(S * n, -1).t().mm(prev[0].reshape(S * n, self.H))  # (4H, H): one matmul
        return dxp, dw


def one(like: Tensor) -> Tensor:
    """A 0-dim 1 to broadcast as the `input` of addcmul (1 - a b in one op)."""
    return torch.ones((), dtype=like.dtype, device=like.device)


class GRUKernel:
    """torch.nn's reset-after GRU: r, z, n; b_hh is applied inside the recurrent matmul.
    The forward uses GRU.step's operations in its order (no fused multiply-adds), so values
    agree with it within the cell's path tolerance (tests/test_variant_fast.py)."""

    n_state = 1
    needs_output_grads = True

    def __init__(self, w_hh: Tensor, b_hh: Tensor):
        self.w, self.b = w_hh, b_hh  # (3H, H), (3H,)
        self.wt = w_hh.t()
        self.H = w_hh.shape[1]

    def allocate(self, count: int, rows: int, like: Tensor) -> None:
        H = self.H
        self.restore([slots(count, rows, 3 * H, like),  # U h + b_hh
                      slots(count, rows, H, like), slots(count, rows, H, like),  # r, z
                      slots(count, rows, H, like)])  # n
        self._gh, self._n = self.gh.unbind(0), self.n.unbind(0)
        self._r, self._z = self.r.unbind(0), self.z.unbind(0)
        self._hr, self._hz = self.gh[..., :H].unbind(0), self.gh[..., H:2 * H].unbind(0)
        self._hn = self.gh[..., 2 * H:].unbind(0)

    def saved(self) -> list[Tensor]:
        return [self.gh, self.r, self.z, self.n]

    def restore(self, saved: list[Tensor]) -> None:
        self.gh, self.r, self.z, self.n = saved

    def step(self, t: int, xg: Tensor, prev, out) -> None:
        ((h,), (h_out,), H) = prev, out, self.H
        torch.addmm(self.b, h, self.wt, out=self._gh[t])  # (n, 3H)
        # each gate on its own contiguous (n, H), as the explicit step: an element's rounding
        # depends on where it falls in the vectorised loop
        torch.add(xg[:, :H], self._hr[t], out=self._r[t]).sigmoid_()
        z = torch.add(xg[:, H:2 * H], self._hz[t], out=self._z[t]).sigmoid_()
        n = torch.mul(self._r[t], self._hn[t], out=self._n[t]).add_(xg[:, 2 * H:]).tanh_()
        torch.sub(h, n, out=h_out).mul_(z).add_(n)  # n + z (h - n)

    def candidate(self, xg: Tensor, prev) -> tuple[Tensor]:
        """One step on a large batch of independent rows, for throughput (see LSTMKernel)."""
        (h,), H = prev, self.H
        gh = torch.addmm(self.b, h, self.wt)  # (n, 3H)
        rz = torch.sigmoid(xg[:, :2 * H] + gh[:, :2 * H])
        n = torch.tanh(torch.addcmul(xg[:, 2 * H:], rz[:, :H], gh[:, 2 * H:]))
        return (torch.lerp(n, h, rz[:, H:]),)

    def prepare_backward(self, prev, new) -> None:
        """Backward coefficients from h_t = (1 - z) n + z h_{t-1}, n = tanh(x_n + r ⊙ (U_n h + b_hn)):
          dh_to_npre  ∂h_t/∂n_pre = (1 - z)(1 - n²)
          recurrent   ∂h_t/∂(U h + b_hh) per gate: [∂/∂(U_r h) = dh_to_npre (U_n h + b_hn) σ'(r),
                      ∂/∂(U_z h) = (h_{t-1} - n) σ'(z), ∂/∂(U_n h) = dh_to_npre r]
          z           the direct path ∂h_t/∂h_{t-1} = z (plus Uᵀ of the above)."""
        r, z, n, hn = self.r, self.z, self.n, self.gh[..., 2 * self.H:]
        self.dh_to_npre = (1 - z) * (1 - n * n)
        self.recurrent = torch.stack([self.dh_to_npre * hn * r * (1 - r), (prev[0] - n) * z * (1 - z),
                                      self.dh_to_npre * r], 2)
        self.dgh = torch.empty_like(self.recurrent)  # (S, n, 3, H) grads of U h + b_hh
        self._rec, self._z, self._dg = self.recurrent.unbind(0), z.unbind(0), self.dgh.unbind(0)

    def backward_step(self, t: int, d, add: Tensor | None):
        (dh,) = d
        dg = torch.mul(self._rec[t], dh.unsqueeze(1), out=self._dg[t])  # (n, 3, H)
        dh_prev = dh * self._z[t] if add is None else torch.addcmul(add, dh, self._z[t])
        return (dh_prev.addmm_(dg.view(dg.shape[0], -1), self.w),)

    def finish(self, prev, new, d_out):
        S, n = self.dgh.shape[:2]
        dxp = torch.cat([self.dgh[:, :, 0], self.dgh[:, :, 1], d_out[0] * self.dh_to_npre], -1)  # (S, n, 3H)
        flat = self.dgh.view(S * n, -1)
        return dxp, flat.t().mm(prev[0].reshape(S * n, self.H)), flat.sum(0)


class RNNKernel:
    """h_t = tanh(xp_t + U h_{t-1})."""

    n_state = 1
    needs_output_grads = False

    def __init__(self, w_hh: Tensor):
        self.w, self.wt = w_hh, w_hh.t()
        self.H = w_hh.shape[1]

    def allocate(self, count: int, rows: int, like: Tensor) -> None:
        pass

    def saved(self) -> list[Tensor]:
        return []

    def restore(self, saved: list[Tensor]) -> None:
        pass

    def step(self, t: int, xg: Tensor, prev, out) -> None:
        torch.addmm(xg, prev[0], self.wt, out=out[0]).tanh_()

    def prepare_backward(self, prev, new) -> None:
        self.tanh_grad = 1 - new[0] * new[0]  # ∂h_t/∂pre_t = 1 - h_t²
        self.dpre = torch.empty_like(self.tanh_grad)
        self._tanh_grad, self._dp = self.tanh_grad.unbind(0), self.dpre.unbind(0)

    def backward_step(self, t: int, d, add: Tensor | None):
        dp = torch.mul(d[0], self._tanh_grad[t], out=self._dp[t])
        return (torch.mm(dp, self.w) if add is None else torch.addmm(add, dp, self.w),)

    def finish(self, prev, new, d_out):
        S, n, H = self.dpre.shape
        return self.dpre, self.dpre.view(S * n, H).t().mm(prev[0].reshape(S * n, H))

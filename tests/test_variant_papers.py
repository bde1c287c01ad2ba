"""Checks derived from each paper's equations, beyond the generic contract."""
from __future__ import annotations

import math

import pytest
import torch

import variants

B, X, H = 4, 3, 5


def _copy_shared(src, dst):
    """Copy the parameters two cells share by name (e.g. an LSTM's into a Phased LSTM)."""
    missing = dst.load_state_dict(src.state_dict(), strict=False)
    assert not missing.unexpected_keys


def test_parameter_counts_match_the_keras_formulas():
    x, h = 32, 32
    counts = {n: sum(p.numel() for p in variants.create(n, x, h).parameters())
              for n in variants.available()}
    assert counts["simple_rnn"] == h * (h + x) + h == 2080
    assert counts["lstm"] == 4 * h * (h + x) + 4 * h == 8320
    assert counts["gru"] == 3 * (h * (h + x) + 2 * h) == 6336
    assert counts["peephole_lstm"] == counts["lstm"] + 3 * h
    assert counts["phased_lstm"] == counts["lstm"] + 3 * h
    assert counts["skip_lstm"] == counts["lstm"] + h + 1
    assert counts["skip_gru"] == counts["gru"] + h + 1


def test_peephole_with_zero_peepholes_is_the_lstm():
    torch.manual_seed(0)
    lstm = variants.create("lstm", X, H)
    peep = variants.create("peephole_lstm", X, H)
    _copy_shared(lstm, peep)
    with torch.no_grad():
        peep.cells[0].peephole.zero_()
    x = torch.randn(B, 11, X)
    for path in variants.get("peephole_lstm").paths:
        torch.testing.assert_close(peep(x, path=path)[0], lstm(x, path="explicit")[0], rtol=1e-6, atol=1e-7)


def test_peepholes_read_the_cell_state():
    """Only the output gate sees c_t; input and forget gates see c_{t-1} (Gers & Schmidhuber)."""
    torch.manual_seed(0)
    cell = variants.create("peephole_lstm", X, H).cells[0]
    h, c = torch.randn(B, H), torch.randn(B, H)
    xp = cell.project(torch.randn(B, X))
    (h1, c1), aux = cell.step(xp, (h, c), None)
    gi, gf, gg, go = (xp + h @ cell.weight_hh.t()).chunk(4, 1)
    p_i, p_f, p_o = cell.peephole
    i, f = torch.sigmoid(gi + p_i * c), torch.sigmoid(gf + p_f * c)
    c_expected = f * c + i * torch.tanh(gg)
    o = torch.sigmoid(go + p_o * c_expected)
    torch.testing.assert_close(c1, c_expected)
    torch.testing.assert_close(h1, o * torch.tanh(c_expected))


def _phased_and_lstm(r_on, period, shift=0.0):
    torch.manual_seed(0)
    phased = variants.create("phased_lstm", X, H).cells[0]
    lstm = variants.create("lstm", X, H).cells[0]
    _copy_shared(lstm, phased)
    with torch.no_grad():
        phased.period.fill_(period)
        phased.shift.fill_(shift)
        phased.r_on.fill_(r_on)
    return phased, lstm


def test_phased_closed_gate_keeps_the_state_except_for_the_leak():
    phased, lstm = _phased_and_lstm(r_on=0.1, period=10.0)
    h, c = torch.randn(B, H), torch.randn(B, H)
    x = torch.randn(B, X)
    t = torch.full((B,), 6.0)  # φ = 0.6 >= r_on: closed
    phased.eval()  # α = 0 at evaluation: exactly the old state
    (h1, c1), aux = phased.step(phased.project(x), (h, c), t)
    assert torch.equal(aux["openness"], torch.zeros(B, H))
    assert torch.equal(h1, h) and torch.equal(c1, c)
    phased.train()  # α = 1e-3 in training: k = α φ blends in a little of the LSTM update
    (h2, c2), aux = phased.step(phased.project(x), (h, c), t)
    (h_l, c_l), _ = lstm.step(lstm.project(x), (h, c), None)
    k = 1e-3 * 0.6
    torch.testing.assert_close(aux["openness"], torch.full((B, H), k))
    torch.testing.assert_close(c2, k * c_l + (1 - k) * c)
    torch.testing.assert_close(h2, k * h_l + (1 - k) * h)


def test_phased_fully_open_ramp_behaves_as_the_lstm():
    """With r_on = 1 and a huge τ the gate is on its opening ramp: k = 2φ/r_on = 2t/τ.
    At φ = r_on/2 exactly (t = τ/2) k = 1 and the step *is* the LSTM step; elsewhere on the
    ramp it is the k-blend of the LSTM step with the previous state."""
    tau = 1e6
    phased, lstm = _phased_and_lstm(r_on=1.0, period=tau)
    h, c = torch.randn(B, H), torch.randn(B, H)
    x = torch.randn(B, X)
    (h_l, c_l), _ = lstm.step(lstm.project(x), (h, c), None)
    (h1, c1), aux = phased.step(phased.project(x), (h, c), torch.full((B,), tau / 2))
    torch.testing.assert_close(aux["openness"], torch.ones(B, H))
    torch.testing.assert_close((h1, c1), (h_l, c_l))
    t = torch.tensor([1e5, 2e5, 3e5, 4e5])  # φ = 0.1 .. 0.4: k = 0.2 .. 0.8
    (h2, c2), aux = phased.step(phased.project(x), (h, c), t)
    k = (2 * t / tau)[:, None].expand(B, H)
    torch.testing.assert_close(aux["openness"], k)
    torch.testing.assert_close(c2, k * c_l + (1 - k) * c)
    torch.testing.assert_close(h2, k * h_l + (1 - k) * h)


def test_phased_openness_follows_the_piecewise_definition():
    phased, _ = _phased_and_lstm(r_on=0.2, period=10.0, shift=1.0)
    phased.eval()
    t = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0, 7.0, 11.5])  # φ = 0, .05, .1, .15, .2, .6, .05
    k = phased.openness(t)[:, 0]
    torch.testing.assert_close(k, torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.5]), atol=1e-5, rtol=0)


def _paper_openness(t: torch.Tensor, period: float, r_on: float) -> torch.Tensor:
    """The paper's k_t at evaluation (s = 0, leak 0), in float64, with the cell's τ = |τ| + 1e-6."""
    tau = period + 1e-6
    phi = torch.remainder(t.double(), tau) / tau
    return torch.where(phi < r_on / 2, 2 * phi / r_on, torch.where(phi < r_on, 2 - 2 * phi / r_on, 0.0)).float()


@pytest.mark.parametrize("times,period,stated", [
    (torch.tensor([1e7 + 0.5, 1e7 + 1.5, 1e7 + 2.5], dtype=torch.float64), 5.0, [0.0, 0.0, 1.0]),  # the case
    (torch.tensor([10_000_000, 10_000_005, 10_000_006]), 7.0, None),  # int64 event times: closed, closed, open
])
def test_phased_openness_keeps_event_timestamp_precision(times, period, stated):
    """r_on = 0.2 at t ≈ 1e7, where float32 resolves only whole units (the float32 cast gave
    k = [0, 0.185, 0.185] for the first case): the phase is computed in float64, in every path."""
    phased, _ = _phased_and_lstm(r_on=0.2, period=period)
    phased.eval()
    expected = _paper_openness(times, period, 0.2)
    if stated is not None:
        torch.testing.assert_close(expected, torch.tensor(stated), atol=1e-5, rtol=0)
    assert expected.max() > 0.5, "the case must reach an open phase"
    torch.testing.assert_close(phased.openness(times)[:, 0], expected, atol=1e-5, rtol=0)
    rnn = variants.create("phased_lstm", X, H).eval()
    _copy_shared(phased, rnn.cells[0])
    batch_times = times.unsqueeze(0).expand(2, -1)
    x = torch.randn(2, len(times), X)
    _, _, traces = rnn.trace(x, times=batch_times)
    torch.testing.assert_close(traces[0].stacked_aux()["openness"][:, 0, 0], expected, atol=1e-5, rtol=0)
    reference, _ = rnn(x, times=batch_times, path="explicit")
    for path in variants.get("phased_lstm").paths:
        out, _ = rnn(x, times=batch_times, path=path)
        torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)


def test_phased_initialisation_follows_the_authors():
    torch.manual_seed(0)
    cell = variants.create("phased_lstm", X, 2000).cells[0]
    log_tau = cell.period.log()
    assert 1.0 <= log_tau.min() and log_tau.max() <= 3.0
    assert (cell.shift >= 0).all() and (cell.shift <= cell.period).all()
    assert torch.equal(cell.r_on, torch.full_like(cell.r_on, 0.05))


@pytest.mark.parametrize("skip,dense", [("skip_lstm", "lstm"), ("skip_gru", "gru")])
def test_skip_gate_forced_to_one_is_the_dense_cell(skip, dense):
    torch.manual_seed(0)
    d = variants.create(dense, X, H, num_layers=2)
    s = variants.create(skip, X, H, num_layers=2, update_gate="always")
    _copy_shared(d, s)
    x = torch.randn(B, 13, X)
    out_d, _ = d(x, path="explicit")
    out_s, state = s(x)
    torch.testing.assert_close(out_s, out_d, rtol=1e-6, atol=1e-7)
    assert torch.equal(state[-1], torch.full_like(state[-1], 13.0))  # 13 updates per sequence


@pytest.mark.parametrize("skip", ["skip_lstm", "skip_gru"])
def test_skip_gate_forced_to_zero_copies_the_state(skip):
    torch.manual_seed(0)
    s = variants.create(skip, X, H, update_gate="never")
    x = torch.randn(B, 13, X)
    start = tuple(torch.randn_like(t) for t in s.initial_state(B))
    out, state = s(x, start)
    assert torch.equal(out, start[0][0][:, None].expand(B, 13, H))
    for a, b in zip(state[:-2], start[:-2]):
        assert torch.equal(a, b)
    assert torch.equal(state[-1], start[-1])  # no updates were counted


@pytest.mark.parametrize("skip", ["skip_lstm", "skip_gru"])
@pytest.mark.parametrize("delta,pattern", [(0.3, [1, 0, 1, 0, 1, 0]), (0.2, [1, 0, 0, 1, 0, 0])])
def test_skip_update_pattern_follows_the_accumulation_rule(skip, delta, pattern):
    """With W_p = 0, Δũ = σ(b_p) is constant: ũ accumulates Δũ while skipping and the unit
    updates once ũ rounds to 1 (ũ: 1 -> .3 -> .6 -> .3 ... for Δũ = 0.3)."""
    s = variants.create(skip, X, H)
    cell = s.cells[0]
    with torch.no_grad():
        cell.update_weight.zero_()
        cell.update_bias.fill_(math.log(delta / (1 - delta)))
    _, _, traces = s.trace(torch.randn(B, len(pattern), X))
    u = torch.stack(traces[0].aux["update"])[:, 0, 0]
    assert u.tolist() == pattern


def test_skip_budget_loss_is_lambda_times_mean_updates():
    s = variants.create("skip_lstm", X, H, budget_weight=0.01, update_gate="always")
    _, state = s(torch.randn(B, 10, X))
    torch.testing.assert_close(s.regularizer(state), torch.tensor(0.01 * 10))
    assert variants.create("skip_lstm", X, H).regularizer(state) is None  # λ = 0: no term


def test_skip_straight_through_gradient_reaches_the_update_layer():
    s = variants.create("skip_gru", X, H, budget_weight=1.0)
    out, state = s(torch.randn(B, 10, X))
    s.regularizer(state).backward()
    assert s.cells[0].update_bias.grad.abs() > 0


@pytest.mark.parametrize("name", ["lstm", "gru", "peephole_lstm", "phased_lstm", "skip_lstm", "skip_gru"])
def test_forget_bias_initialisation(name):
    cell = variants.create(name, X, 50, forget_bias=3.0).cells[0]
    bias = cell.bias if hasattr(cell, "bias") else cell.bias_ih
    assert torch.equal(bias[50:100], torch.full((50,), 3.0))
    cell = variants.create(name, X, 500, forget_init="chrono", chrono_max=100).cells[0]
    bias = cell.bias if hasattr(cell, "bias") else cell.bias_ih
    f = bias[500:1000]
    assert f.min() >= 0 and f.max() <= math.log(99)
    assert f.std() > 0.5  # spread over log U(1, 99), not a constant
    if hasattr(cell, "bias"):  # LSTMs: chrono sets b_i = -b_f
        assert torch.equal(bias[:500], -f)


def test_chrono_without_a_horizon_is_a_clear_error():
    with pytest.raises(ValueError, match="chrono_max"):
        variants.create("lstm", X, H, forget_init="chrono")


def test_keras_initialisation_is_orthogonal_and_zero_bias():
    cell = variants.create("simple_rnn", X, 16, weight_init="keras").cells[0]
    u = cell.weight_hh
    torch.testing.assert_close(u.t() @ u, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.equal(cell.bias, torch.zeros(16))

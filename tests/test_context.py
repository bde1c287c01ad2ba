"""The context-ablation probe (Khandelwal et al. 2018) on models whose context is known by
construction: a recurrent cell that only sees its last k inputs has an effective context of k."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import variants
from harness.training import context
from variants import Cell


class Window(Cell):
    """A shift register of the last k projected inputs: h_t depends on x_{t-k+1..t} only."""

    name = "window_test"
    state_names = ("h", "register")

    def __init__(self, input_size, hidden_size, options=None, k=8):
        super().__init__(input_size, hidden_size, options)
        self.k = k
        self.inp = nn.Linear(input_size, hidden_size)
        self.mix = nn.Linear(hidden_size * k, hidden_size)

    def state_sizes(self):
        return (self.hidden_size, self.hidden_size * self.k)

    def project(self, x):
        return self.inp(x)

    def step(self, xp, state, t):
        register = torch.cat([state[1][:, self.hidden_size:], xp], dim=1)  # drop the oldest, push x_t
        return (torch.tanh(self.mix(register)), register), {}


class WindowLM(nn.Module):
    """Embedding -> window cell -> next-token logits; scores the token after each context."""

    def __init__(self, vocab, k):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, 16)
        cell = type("W", (Window,), {"__init__": lambda s, i, h, o=None: Window.__init__(s, i, h, o, k=k)})
        self.rnn = variants.Recurrent(cell, 16, 16)
        self.head = nn.Linear(16, vocab)

    def score(self, ids, lengths, targets):
        out, _ = self.rnn(self.embed(ids), lengths=lengths)
        last = out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, 16)).squeeze(1)
        return {"loss": torch.nn.functional.cross_entropy(5 * self.head(last), targets, reduction="none")}

    def predictions(self, ids):
        """The model's own next-token choice from the whole context: a target only the tokens
        the model reads can explain (random targets would make every context equally bad)."""
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1]).argmax(-1)


@pytest.mark.parametrize("k", [1, 4, 8, 23])
def test_a_model_that_sees_its_last_k_inputs_has_effective_context_k(k):
    V, N, W = 50, 256, 64
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (N, W), generator=gen)
    model = WindowLM(V, k).eval()
    targets = model.predictions(ids)
    sample = lambda g, n: torch.randint(0, V, (n,), generator=g)  # noqa: E731
    grid = context.distances(W)
    assert k in grid
    curve = context.curve(model.score, ids, torch.full((N,), W), targets, grid, sample, seed=0)
    d, censored = context.effective_context(curve)
    assert (d, censored) == (k, False)
    full = curve[(curve["mode"] == "full") & (curve["metric"] == "loss")]["value"].item()
    for mode in context.MODES:  # beyond k nothing the model reads changes: exactly the full loss
        part = curve[(curve["mode"] == mode) & (curve["metric"] == "loss") & (curve["distance"] >= k)]
        assert part["value"].tolist() == pytest.approx([full] * len(part), rel=1e-6)
    shorter = curve[(curve["mode"] == "drop") & (curve["distance"] < k)]
    assert (shorter["value"] > full * 1.01).all(), "a shorter context changes what the model sees"


def test_a_model_that_uses_its_whole_window_is_censored():
    V, N, W = 50, 200, 16
    gen = torch.Generator().manual_seed(2)
    model = WindowLM(V, 32).eval()  # remembers more than the window holds
    ids = torch.randint(0, V, (N, W), generator=gen)
    targets = model.predictions(ids)
    curve = context.curve(model.score, ids, torch.full((N,), W), targets,
                          context.distances(W), lambda g, n: torch.randint(0, V, (n,), generator=g), modes=("drop",))
    assert context.effective_context(curve) == (W, True)


def test_ablations_keep_the_last_d_tokens_and_change_only_what_is_farther():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 0, 0]])
    lengths = torch.tensor([6, 3])
    gen = torch.Generator().manual_seed(0)
    x, n = context.ablate(ids, lengths, 2, "drop", None, gen)
    assert x.tolist() == [[5, 6, 0, 0, 0, 0], [8, 9, 0, 0, 0, 0]] and n.tolist() == [2, 2]
    x, n = context.ablate(ids, lengths, 2, "replace", lambda g, k: torch.full((k,), 42), gen)
    assert x.tolist() == [[42, 42, 42, 42, 5, 6], [42, 8, 9, 0, 0, 0]] and n.tolist() == [6, 3]
    x, n = context.ablate(ids, lengths, 2, "shuffle", None, gen)
    assert sorted(x[0, :4].tolist()) == [1, 2, 3, 4] and x[0, 4:].tolist() == [5, 6]
    assert x[1].tolist() == [7, 8, 9, 0, 0, 0] and n.tolist() == [6, 3]
    shuffled = {tuple(context.ablate(ids, lengths, 2, "shuffle", None, gen)[0][0, :4].tolist()) for _ in range(30)}
    assert len(shuffled) > 5, "the far tokens are really permuted"


def test_the_distance_grid_is_geometric_and_ends_at_the_window():
    grid = context.distances(512)
    assert grid[:8] == [1, 2, 3, 4, 6, 8, 11, 16] and grid[-1] == 512
    ratios = [b / a for a, b in zip(grid[4:-1], grid[5:-1])]
    assert all(1.3 < r < 1.5 for r in ratios)


def test_effective_context_over_training_grows_or_levels_off_with_intervals_over_seeds():
    """The context claim's curve (protocol v2): five probes spanning 16x tokens per run; an LSTM
    whose effective context doubles with every 4x of tokens grows (slope 0.5 in its interval),
    a SimpleRNN at 7 tokens throughout levels off, a GRU that rises 14x and falls back (the
    measured quick run's shape) has a flat slope but is no plateau; perplexity and the distance
    to convergence sit beside them, a rise named as one."""
    import numpy as np
    import pandas as pd

    from harness.claims.context_training import convergence, over_training

    rows = []
    tokens = [1e6 * 2 ** k for k in range(5)]
    for seed, noise in enumerate((0.9, 1.0, 1.1)):
        for k, t in enumerate(tokens):
            rows.append({"run_id": f"l{seed}", "variant": "lstm", "seed": seed, "step": k, "tokens": t,
                         "effective": 20 * noise * (t / 1e6) ** 0.5, "censored": False, "loss": 5.0 - 0.1 * k})
            rows.append({"run_id": f"s{seed}", "variant": "simple_rnn", "seed": seed, "step": k, "tokens": t,
                         "effective": 7 * noise, "censored": False, "loss": 5.2 - 0.05 * k})
            rows.append({"run_id": f"g{seed}", "variant": "gru", "seed": seed, "step": k, "tokens": t,
                         "effective": (26, 203, 362, 161, 26)[k] * noise, "censored": False,
                         "loss": (5.3, 5.2, 5.1, 5.0, 5.05)[k]})
    points = pd.DataFrame(rows)
    points["perplexity"] = np.exp(points["loss"])
    table, growth = over_training(points, ("simple_rnn", "lstm", "gru", "tcn"))
    growth = growth.set_index("variant")
    assert growth.loc["lstm", "kind"] == "grows" and growth.loc["lstm", "slope_low"] <= 0.5 <= growth.loc["lstm", "slope_high"]
    assert growth.loc["simple_rnn", "kind"] == "levels off" and "over 16x tokens" in growth.loc["simple_rnn", "growth_text"]
    assert growth.loc["gru", "slope_low"] >= -0.125 and growth.loc["gru", "slope_high"] <= 0.125  # flat slope...
    assert growth.loc["gru", "kind"] == "undetermined"  # ...yet a hump, not a plateau
    assert "no single trend: a probe lies 3.9x from the fitted line" in growth.loc["gru", "growth_text"]
    assert "gru" in table.variant.values and "tcn" not in growth.index
    lstm = table[table.variant == "lstm"]
    assert list(lstm["probe"]) == [1, 2, 3, 4, 5] and lstm["effective_context"].iloc[-1] > 3 * lstm["effective_context"].iloc[0]
    assert (lstm["ci_low"] <= lstm["effective_context"]).all() and (lstm["effective_context"] <= lstm["ci_high"]).all()
    assert convergence(table)["lstm"].startswith(f"perplexity {np.exp(4.6):.0f} at the last probe, 9.5% below")
    assert convergence(table)["gru"].startswith(f"perplexity {np.exp(5.05):.0f} at the last probe, 5.1% above")


def test_probes_are_matched_by_step_and_an_early_stopped_run_gives_its_end_point():
    """Seed 0 stopped on the plateau rule at step 650 (after its probe at 400); seed 1 ran to
    1,600 (probes at 100, 200, 400, 800): the curve pairs 100, 200 and 400, then the two ends."""
    import pandas as pd

    from harness.claims.context_training import over_training

    rows = []
    for seed, steps in ((0, (100, 200, 400, 650)), (1, (100, 200, 400, 800, 1600))):
        for step in steps:
            rows.append({"run_id": f"r{seed}", "variant": "lstm", "seed": seed, "step": step, "tokens": 2240.0 * step,
                         "effective": float(step), "censored": False, "loss": 5.0, "perplexity": 148.4})
    table, growth = over_training(pd.DataFrame(rows), ("lstm",))
    assert list(table["training_tokens"] / 2240) == [100, 200, 400, (650 + 1600) / 2]
    assert list(table["end"]) == [False, False, False, True]
    assert table["effective_context"].iloc[2] == pytest.approx(400)  # both seeds at step 400, not 400 and 800


def test_an_effective_context_interval_is_never_narrower_than_the_grid_step_below_it():
    """Three seeds all at d = 8 on the sqrt(2) grid (..., 6, 8, 11, ...) mean "between 6 and 8",
    not "exactly 8": the interval reaches the grid point below; a censored d (the whole window)
    has none below it; a wide interval over seeds is kept."""
    import pandas as pd

    from harness.claims.context_report import on_grid

    assert on_grid(pd.Series([8.0, 8.0, 8.0]), 512) == pytest.approx((8.0, 6.0, 8.0))
    mean, low, high = on_grid(pd.Series([512.0, 512.0]), 512, pd.Series([True, True]))
    assert (mean, low, high) == pytest.approx((512.0, 512.0, 512.0))
    mean, low, high = on_grid(pd.Series([4.0, 64.0, 8.0]), 512)
    assert low < 3 and high > 64  # the seeds' own spread is wider than the grid step: unchanged
    assert on_grid(pd.Series([1.0, 1.0]), 512) == pytest.approx((1.0, 1.0, 1.0))  # nothing below 1


def test_the_unigram_perplexity_comes_from_the_runs_that_logged_it_with_no_archive(tmp_path, monkeypatch):
    """Runs log their task's baseline (`baseline_perplexity`: imdb_lm's unigram model); the report
    reads it there, so `report --from-results` of such runs needs no IMDB archive. Here the data
    directory is empty: rebuilding the task to ask it would fail."""
    import pandas as pd

    from harness.claims.context_report import perplexity_table

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    runs = pd.DataFrame({"claim_grid": ["lm", "lm"], "task.name": ["imdb_lm", "imdb_lm"],
                         "baseline_perplexity": [621.7, 621.7]})
    frame = pd.DataFrame({"grid": ["lm", "lm"], "variant": ["lstm", "lstm"], "perplexity": [170.0, 172.0],
                          "seconds": [600.0, 660.0]})
    (row,) = perplexity_table(frame, runs).to_dict("records")
    assert row["unigram_perplexity"] == 621.7 and row["test_perplexity"] == pytest.approx(171.0)
    assert row["minutes_per_run"] == pytest.approx(10.5)

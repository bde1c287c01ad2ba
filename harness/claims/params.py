"""Claim `params`: the parameter counts the course material quotes are the Keras formulas."""
from __future__ import annotations

import pandas as pd

import variants
from harness.claims.base import Claim, ClaimReport, Grid, Planned, Verdict
from harness.claims.registry import register

# Closed forms, x = input size, h = state size (one bias vector where Keras has one).
FORMULAS = {
    "simple_rnn": ("h(h+x) + h", lambda x, h: h * (h + x) + h),
    "lstm": ("4h(h+x) + 4h", lambda x, h: 4 * h * (h + x) + 4 * h),
    "gru": ("3(h(h+x) + 2h)", lambda x, h: 3 * (h * (h + x) + 2 * h)),
    "peephole_lstm": ("4h(h+x) + 4h + 3h", lambda x, h: 4 * h * (h + x) + 7 * h),
    "phased_lstm": ("4h(h+x) + 4h + 3h", lambda x, h: 4 * h * (h + x) + 7 * h),
    "skip_lstm": ("4h(h+x) + 4h + h + 1", lambda x, h: 4 * h * (h + x) + 5 * h + 1),
    "skip_gru": ("3(h(h+x) + 2h) + h + 1", lambda x, h: 3 * (h * (h + x) + 2 * h) + h + 1),
}
# Keras IMDB recipe, whole model: Embedding(10000, 32) + cell(32) + Dense(1): 320,000 + cell + 33.
KERAS_MODEL = {"simple_rnn": 322_113, "lstm": 328_353, "gru": 326_369}
SIZES = ((32, 32), (1, 110), (10, 20), (128, 256))


@register
class Params(Claim):
    name = "params"
    title = "Parameter counts match the closed-form (Keras) formulas"
    statement = ("SimpleRNN(32) on 32 inputs has 2,080 parameters and LSTM(32) 8,320 = 4·h·(h+x) + 4·h "
                 "(Keras, one bias vector); the whole Keras IMDB LSTM model has 328,353.")
    sources = "Chollet, Deep Learning with Python (1st ed.), notebook 6.2; CS224n lecture slides"
    protocol = ("Every registered variant is built at several (input x, state h) sizes and its trainable "
                "parameters counted; each count is compared with the closed form for that cell. The three "
                "Keras IMDB models (Embedding(10000, 32), cell(32), Dense(1)) are built through the harness's "
                "model and compared with Keras' model.summary totals. Verdict: reproduced (an exact match) when every "
                "count with a known formula equals it, else not reproduced (listing the rows).")
    seeds = {"smoke": 1, "quick": 1, "full": 1}
    trains = False

    def grids(self, budget):
        names = self.cells
        cells = Grid("cell", {"scope": "cell"}, {"variant": names, "size": tuple(f"{x}x{h}" for x, h in SIZES)}, seeds=1)
        model = Grid("keras-imdb-model", {"scope": "model", "size": "32x32"}, {"variant": tuple(KERAS_MODEL)}, seeds=1)
        return (cells, model)

    def measure(self, planned: Planned) -> dict[str, float]:
        v = planned.values
        x, h = (int(s) for s in v["size"].split("x"))
        if v["scope"] == "model":
            from harness.training.spec import build_spec
            from harness.training.model import SequenceModel, trainable_parameters

            spec = build_spec({"model": {"variant": v["variant"], "hidden_size": h, "embedding_dim": x},
                               "task": {"name": "imdb"}, "cell": {"weight_init": "keras"}})
            return {"trainable_params": float(trainable_parameters(
                SequenceModel(spec.model, spec.cell, spec.build_task())))}
        return {"trainable_params": float(sum(p.numel() for p in variants.create(v["variant"], x, h).parameters()))}

    def analyse(self, runs, context):
        rows = []
        for _, r in runs.iterrows():
            variant, scope, size = r["variant"], r["scope"], r["size"]
            x, h = (int(s) for s in size.split("x"))
            measured = int(r["trainable_params"])
            if scope == "model":
                text, expected = "Keras model.summary()", KERAS_MODEL.get(variant)
            else:
                text, fn = FORMULAS.get(variant, ("no formula", None))
                expected = fn(x, h) if fn else None
            rows.append({"scope": scope, "variant": variant, "x": x, "h": h, "measured": measured,
                         "formula": text, "expected": expected,
                         "match": None if expected is None else measured == expected})
        table = pd.DataFrame(rows).sort_values(["scope", "variant", "x", "h"]).reset_index(drop=True)
        known = table[table["match"].notna()]
        bad = known[~known["match"].astype(bool)]
        verdict = Verdict.REPRODUCED if len(known) and bad.empty else Verdict.NOT_REPRODUCED
        keras = table[(table.x == 32) & (table.h == 32)].set_index(["scope", "variant"])["measured"]
        detail = (f"{'Exact match: ' if verdict == Verdict.REPRODUCED else 'Mismatch: '}"
                  f"{len(known) - len(bad)} of {len(known)} counts equal their formula. At x = h = 32: "
                  f"SimpleRNN {keras.get(('cell', 'simple_rnn'), 'n/a'):,}, LSTM {keras.get(('cell', 'lstm'), 'n/a'):,}, "
                  f"GRU {keras.get(('cell', 'gru'), 'n/a'):,}; Keras IMDB LSTM model "
                  f"{keras.get(('model', 'lstm'), 'n/a'):,}.")
        if not bad.empty:
            detail += " Mismatches: " + "; ".join(f"{r.variant} {r.x}x{r.h}: {r.measured} vs {r.expected}"
                                                  for r in bad.itertuples())
        return ClaimReport(verdict, detail, {"parameter_counts": table}, {"parameters": _figure(table)})


def _figure(table: pd.DataFrame):
    import matplotlib.pyplot as plt

    part = table[(table.scope == "cell") & (table.x == 32) & (table.h == 32)].sort_values("measured")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.barh(part["variant"], part["measured"], color="#4c72b0", label="measured")
    ax.scatter(part["expected"], part["variant"], color="#dd8452", zorder=3, marker="|", s=400, label="formula")
    ax.bar_label(bars, labels=[f"{v:,}" for v in part["measured"]], padding=3, fontsize=8)
    ax.set_xlabel("trainable parameters (input 32, state 32)")
    ax.set_xlim(0, part["measured"].max() * 1.2)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Parameters per cell vs closed-form formula")
    fig.tight_layout()
    return fig

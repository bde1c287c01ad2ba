"""Claim `params`: the parameter counts the course material quotes are the Keras formulas."""
from __future__ import annotations

from harness.claims.base import Claim, Grid, Planned
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
    formulas, keras_model = FORMULAS, KERAS_MODEL  # read by the analysis
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
        import variants  # torch: only when counting

        return {"trainable_params": float(sum(p.numel() for p in variants.create(v["variant"], x, h).parameters()))}

    def analyse(self, runs, context):
        from harness.claims import params_analysis  # pandas, scipy, matplotlib: only to report

        return params_analysis.analyse(self, runs, context)

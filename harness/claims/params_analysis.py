"""The `params` claim's analysis: every count against its closed form, the figure."""
from __future__ import annotations

import pandas as pd

from harness.claims.base import ClaimReport, Verdict


def analyse(claim, runs, context):
    """The claim's report from its runs (the neutral run table)."""
    rows = []
    for _, r in runs.iterrows():
        variant, scope, size = r["variant"], r["scope"], r["size"]
        x, h = (int(s) for s in size.split("x"))
        measured = int(r["trainable_params"])
        if scope == "model":
            text, expected = "Keras model.summary()", claim.keras_model.get(variant)
        else:
            text, fn = claim.formulas.get(variant, ("no formula", None))
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

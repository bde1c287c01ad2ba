"""Claim `context`: the "in practice" of "~100 timesteps for an LSTM, ~7 for a vanilla RNN",
measured where the line comes from, on real text: how much context does each cell's language
model use (Khandelwal et al. 2018), and how much of a review does each cell's classifier use?

Protocol v2 measures it as a curve over training: one language-model run per (cell, seed)
probes its effective context at training-token counts total/16 ... total, trained to a plateau
of its validation perplexity or three epochs (context_training.py)."""
from __future__ import annotations

from harness.claims.base import Claim, ClaimReport, Grid, against_claims, interval_match, verdict_of_matches
from harness.claims.imdb import RECIPE
from harness.claims.registry import register

CLAIMED = {"simple_rnn": 7, "lstm": 100}
FACTOR = 2.0
KHANDELWAL = {"effective context (LSTM)": 200, "word order matters within (LSTM)": 50}
QUICK_CELLS = ("simple_rnn", "lstm", "gru")

PROBES = 5  # context probes per LM run: total/16, /8, /4, /2 and the end (a 16x span of tokens)
LM = {"task.name": "imdb_lm", "task.length": 70, "model.embedding_dim": 128, "model.hidden_size": 256,
      "train.batch_size": 32, "train.optimizer": "adam", "train.lr": 2e-3, "train.clip": 0.5,
      "train.schedule": "constant", "train.epochs": 1, "track.context_probe": True, "track.context_window": 512,
      "track.context_points": PROBES, "track.probe_points": 2, "track.gate_stats": False}
CLASSIFIER = {**RECIPE, "track.context_probe": True, "track.context_window": 500, "track.probe_points": 2}
BUDGETS = {  # LM training tokens (0: all), LM eval, classifier epochs, problems; lm: LM settings of the budget
    "smoke": dict(tokens=60_000, val=5_000, test=10_000, eval_every=0, epochs=1, problems=40, window=64,
                  classifier={"task.length": 100, "task.train_subset": 512, "task.val_size": 256,
                              "task.test_subset": 512, "track.context_window": 100}, lm={"model.hidden_size": 32,
                                                                                         "model.embedding_dim": 16}),
    # quick: the whole training stream, three epochs at most, stopped when validation perplexity has not
    # improved for 4 evaluations (2,000 steps); a smaller LM than full's, to fit a 2-core CPU
    "quick": dict(tokens=0, val=100_000, test=500_000, eval_every=500, epochs=3, problems=400, window=512,
                  classifier={}, lm={"train.epochs": 3, "train.patience": 4, "model.hidden_size": 128,
                                     "model.embedding_dim": 64}),
    "full": dict(tokens=0, val=200_000, test=0, eval_every=2000, epochs=10, problems=2000, window=512,
                 classifier={}, lm={"train.epochs": 5, "train.patience": 4}),
}


@register
class Context(Claim):
    name = "context"
    title = "Effective context on real text: how much of its past does each cell use?"
    statement = ("In practice an LSTM uses about 100 timesteps of context and a vanilla RNN about 7 (CS224n); "
                 "Khandelwal et al. 2018 measured ~200 tokens for LSTM language models, word order mattering "
                 "within ~50.")
    sources = ("Stanford CS224n lecture slides; Khandelwal, He, Qi & Jurafsky 2018, 'Sharp Nearby, Fuzzy Far "
               "Away: How Neural Language Models Use Context' (ACL)")
    cells = QUICK_CELLS
    protocol = (
        "**Language models** (task `imdb_lm`): every cell with the same embedding (128), state (256) and "
        "optimiser (Adam lr 2e-3, clip 0.5, batch 32 streams x 70 tokens, truncated BPTT with the state "
        "carried across chunks, adaptive softmax over 10,000 words), trained on IMDB review text (the "
        "training reviews less 2,000 held out; how many tokens: see Budget), tested on the test reviews. "
        "The learning rate is the same for every cell (no cell is tuned), constant. **Training to a plateau**: "
        "a language model trains until its validation perplexity has not improved for 4 evaluations (the "
        "plateau rule; train.patience) or a maximum number of epochs (see Budget: 3 at quick). **Context "
        "over training**: each run probes its effective context (the cut context below) at total/16, /8, /4, "
        "/2 of its planned steps and at its end, so one run gives effective context and perplexity against "
        "training tokens; per cell the geometric mean over seeds with a 95% t-interval, and the curve's "
        "log-log slope with a bootstrap interval over seeds: it **grows** with training when the interval "
        "lies above 0, **levels off** when it lies within ±0.125 and every probe lies within a factor √2 "
        "of the fitted line (a hump is no plateau), else undetermined (as the horizon claim's budget "
        "curve). The probes during training measure the cut context only and the run's share of time "
        "they take is recorded (`context_probe_share`). **Context ablation** "
        "(Khandelwal et al. 2018) on 400 seeded test positions: the loss of the next word when the model "
        "reads only the last d tokens (state reset d tokens back), and, over a 512-token window, when the "
        "tokens farther than d are shuffled or replaced by words drawn from the training unigram "
        "distribution; d on a sqrt(2) grid. **Effective context** = the smallest d whose drop-loss is within "
        "1% of the full-window loss (the order context: the same for shuffle); per cell the geometric mean "
        "over seeds with a 95% t-interval of log d, widened to the grid: a run's d says only that its "
        "effective context lies between the grid point below d and d, so the interval reaches at least "
        "from the geometric mean of those points below to that of the d. **Classifiers**: the Keras IMDB recipe (as claim `imdb`: "
        "500 words, embedding 32, state 32, padding read as words), the same ablation on 1,000 test "
        "reviews: accuracy and loss when only the last d words are kept or the words beyond d are replaced. "
        "**Verdict** at the end of training (the last point; how far it is from convergence is stated beside "
        "it): by the claims' shared interval rule, SimpleRNN matches '~7' when the 95% interval of its LM "
        "effective context lies within a factor of 2 (3.5-14), LSTM matches '~100' within a factor of 2 "
        "(50-200); 'no' when it lies outside, 'inconclusive' when it holds both; 'reproduced' when both match, "
        "'not reproduced' when neither, 'partly reproduced' when one does, 'inconclusive' when a part is and "
        "none fails, 'untestable' when a cell is missing.")

    def grids(self, budget):
        b = BUDGETS[budget]
        lm = {**LM, **b["lm"], "task.train_tokens": b["tokens"], "task.val_tokens": b["val"],
              "task.test_tokens": b["test"], "train.eval_every": b["eval_every"],
              "track.context_problems": b["problems"], "track.context_window": b["window"]}
        classifier = {**CLASSIFIER, **b["classifier"], "train.epochs": b["epochs"],
                      "track.context_problems": 2 * b["problems"] if budget == "smoke" else 1000}
        cells = {"model.variant": self.cells}
        return Grid("lm", lm, cells), Grid("classifier", classifier, cells)

    def analyse(self, runs, context):
        from harness.claims import context_report as report  # pandas, scipy, matplotlib: only to report

        frame = report.frame(runs)
        curves = report.curves(frame, context)
        from harness.claims import context_training as training

        table = report.effective_table(frame, self.cells, curves)
        over, growth = training.over_training(training.points(frame, runs, context), self.cells,
                                              report.window(curves, "lm"))
        distance = training.convergence(over) if len(over) else {}
        if len(growth):
            table = table.merge(growth[["variant", "growth_text"]], on="variant", how="left")
        table["convergence"] = table["variant"].map(distance).fillna("n/a")
        table["growth_text"] = table["growth_text"].fillna("n/a") if "growth_text" in table else "n/a"
        verdict_table, verdict, detail = verdict_of(table)
        perplexity = report.perplexity_table(frame, runs)
        figures = {"lm_ablation": report.lm_figure(curves), "effective_context": report.bars(table, CLAIMED,
                                                                                               KHANDELWAL)}
        if len(over):
            figures["context_over_training"] = training.figure(over, CLAIMED, KHANDELWAL["effective context (LSTM)"])
        if (curves["grid"] == "classifier").any():
            figures["classifier_ablation"] = report.classifier_figure(curves)
        notes = report.notes(table, perplexity)
        return ClaimReport(verdict, detail, {
            "verdict": verdict_table, "effective_context": table, "context_over_training": over,
            "growth": growth, "perplexity": perplexity, "lm_curves": report.curve_table(curves, "lm"),
            "classifier_curves": report.curve_table(curves, "classifier"),
            "khandelwal_2018": report.khandelwal_table(KHANDELWAL)}, figures, notes)


def _match(row, claimed: float) -> str:
    """The claims' shared interval rule on the effective context's 95% interval (a censored
    context, beyond the window, is the interval [its value, ∞))."""
    if row is None:
        return "untestable"
    high = float("inf") if row["lm_censored"] else row["lm_high"]
    return interval_match(row["lm_low"], high, claimed / FACTOR, claimed * FACTOR)


def verdict_of(table):
    import pandas as pd

    rows, matches = against_claims(table, CLAIMED, _match, {"measured": "lm_text", "over training": "growth_text",
                                                            "from convergence": "convergence"})
    verdict = verdict_of_matches(matches)
    detail = "; ".join(f"{r['variant']}: language-model effective context {r['measured']} tokens at the end of "
                       f"training (claimed {r['claimed']}; over training it {r['over training']}; "
                       f"{r['from convergence']}): {r['matches']}" for r in rows)
    others = [f"{r['variant']} {r['lm_text']}" for r in table.to_dict("records") if r["variant"] not in CLAIMED]
    detail += "." + (f" Other cells: {', '.join(others)}." if others else "")
    detail += f" Khandelwal et al. 2018: ~{KHANDELWAL['effective context (LSTM)']} tokens for an LSTM LM."
    return pd.DataFrame(rows), verdict, detail

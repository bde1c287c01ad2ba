"""Claim `phased`: Phased LSTM beats the LSTM on frequency discrimination, most of all when
sampling is fine or irregular (Neil, Pfeiffer & Liu 2016, task 1)."""
from __future__ import annotations

from harness.claims.base import Claim, Grid
from harness.claims.registry import register

REGIMES = ("standard", "high_res", "async")
# Read off the authors' chart (Phased LSTM / LSTM), in percent.
PAPER = {"standard": (99.3, 89.0), "high_res": (99.6, 52.0), "async": (98.0, 69.0)}  # per COMPARED pair
COMPARED = ("phased_lstm", "lstm")  # the claim: the first beats the second
EPOCH = 5000  # the authors' epoch: 5,000 training sequences
CELLS = ("phased_lstm", "lstm", "gru")


def _grid(regime: str, common: dict, cells=CELLS) -> Grid:
    return Grid(regime, {**common, "task.name": "frequency", "task.sampling": regime}, {"model.variant": cells})


@register
class Phased(Claim):
    name = "phased"
    cells = CELLS
    compared, epoch, paper, regimes = COMPARED, EPOCH, PAPER, REGIMES  # read by the analysis
    title = "Phased LSTM vs LSTM on frequency discrimination"
    statement = ("Phased LSTM classifies sine waves by period more accurately than an LSTM, and the gap "
                 "grows under high-resolution and asynchronous sampling (≈ 99/89%, 99.6/52%, 98/69%).")
    sources = "Neil, Pfeiffer & Liu 2016, Phased LSTM (NeurIPS), task 1; accuracies read off their chart"
    protocol = (
        "The frequency task (period 5-6 ms vs log-uniform 1-100 ms, waves of 15-125 ms, half of every batch "
        "in the target band) under the three sampling regimes; every model gets the timestamp as an input "
        "feature as the authors' LSTM did, and Phased LSTM also reads it in its time gate. Adam lr 1e-3, "
        "evaluation once per 'epoch' of 5,000 sequences; test accuracy of the best-validation weights; "
        "several seeds. Epochs to 90% = the first epoch whose validation accuracy reaches 90%. **Verdict** "
        "per regime, by the claims' shared interval rule on the 95% Welch interval of (Phased LSTM - LSTM) "
        "test accuracy against the paper's gap d: 'yes' when it lies above d/2, 'no' when it lies below, "
        "'inconclusive' when it holds both (the data cannot tell the paper's effect from none); "
        "'reproduced' when every regime says yes, 'not reproduced' when none does and none is inconclusive, "
        "'partly reproduced' when some do, 'inconclusive' when a regime is inconclusive and none says no. "
        "The paper's accuracies are listed alongside.")

    def grids(self, budget):
        if budget == "smoke":
            common = {"model.hidden_size": 16, "train.batch_size": 32, "train.steps": 20, "train.eval_every": 10,
                      "task.val_size": 256, "task.test_size": 256, "task.length": 40, "track.probe_points": 1}
            return tuple(_grid(r, common, self.cells) for r in REGIMES)
        batch, quick = 32, budget == "quick"
        epochs = 5 if quick else 70
        # quick: waves of at most 60 ms (high_res: 600 steps, not 1,250) to fit a CPU budget
        common = {"model.hidden_size": 32 if quick else 110, "train.batch_size": batch,
                  "task.length": 60 if quick else 125,
                  "train.lr": 1e-3, "train.steps": epochs * EPOCH // batch, "train.eval_every": EPOCH // batch,
                  "task.val_size": 512, "task.test_size": 2048 if budget == "quick" else 4096,
                  "track.probe_points": 2}
        return tuple(_grid(r, common, self.cells) for r in REGIMES)

    def analyse(self, runs, context):
        from harness.claims import phased_analysis  # pandas, scipy, matplotlib: only to report

        return phased_analysis.analyse(self, runs, context)

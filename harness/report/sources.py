"""Where a report's runs come from: a tracking store (`StoreSource`), or the files an earlier
report left in its claim folders (`FolderSource`, `report --from-results`: no store at all).
Both give a claim's runs of one budget as `Inputs` and the Context its analysis asks."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.claims import BUDGETS, Claim, Context
from harness.report.inputs import RUNS, Inputs, Recording
from harness.tracking import Outcome, is_report, neutral_table, open_runs


def result_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """From a claim's neutral run table: the runs that reached a result (finished or diverged;
    a crash or a kill is not one), the newest per configuration fingerprint."""
    if runs.empty or "claim_budget" not in runs:
        return pd.DataFrame(columns=["claim_budget"])
    runs = runs[runs["outcome"].map(lambda o: Outcome(o).is_result)]
    if "fingerprint" in runs:  # one result per configuration: the newest
        runs = runs.sort_values("started").drop_duplicates("fingerprint", keep="last")
    return runs


def budgets_of(runs: pd.DataFrame) -> list[str]:
    """The budgets that result_runs holds runs of, smallest first."""
    return [b for b in BUDGETS if b in set(runs["claim_budget"])]


def select_runs(runs: pd.DataFrame, budget: str | None) -> tuple[pd.DataFrame, str | None]:
    """result_runs of one budget (default: the largest budget with runs)."""
    runs = result_runs(runs)
    present = budgets_of(runs)
    budget = budget or (present[-1] if present else None)
    return runs[runs["claim_budget"] == budget].reset_index(drop=True), budget


class StoreSource:
    """A claim's runs from the store at `uri`: its experiment's runs but report runs, the
    result runs of one budget (select_runs); the analysis's histories and artifacts are fetched
    as it asks (Recording), so that the folder keeps them."""

    def __init__(self, uri: str):
        self.store = open_runs(uri)
        self.uri = self.store.uri
        self._records: dict[str, list] = {}
        self.notes: list[str] = []

    def _table(self, claim: Claim) -> pd.DataFrame:
        if claim.name not in self._records:
            self._records[claim.name] = [r for r in self.store.records(claim.experiment) if not is_report(r.tags)]
        return neutral_table(self._records[claim.name])

    def budgets(self, claim: Claim) -> list[str]:
        return budgets_of(result_runs(self._table(claim)))

    def inputs(self, claim: Claim, budget: str, workdir: Path) -> tuple[Inputs, Context] | None:
        selected, _ = select_runs(self._table(claim), budget)
        if selected.empty:
            return None
        by_id = {r.run_id: r for r in self._records[claim.name]}
        inputs = Inputs.of([by_id[run_id] for run_id in selected["run_id"]])
        return inputs, Recording(inputs, self.store, workdir).context()

    def reported(self, claim: Claim, written) -> None:
        """The report as a run in the claim's experiment (harness.report.tracked)."""
        from harness.report.tracked import log_report_run

        log_report_run(self.store, claim, written)


class FolderSource:
    """A claim's runs from `root/<claim>/runs.csv` and the histories and artifacts kept beside
    it (harness.report.inputs); a claim folder without runs.csv is left out, with a note."""

    def __init__(self, root: Path):
        self.root = root
        self._inputs: dict[str, Inputs | None] = {}
        self.notes: list[str] = []

    def _read(self, claim: Claim) -> Inputs | None:
        if claim.name not in self._inputs:
            folder = self.root / claim.name
            found = None
            if (folder / RUNS).exists():
                found = Inputs.read(folder)  # all in memory: the folder may be written over next
            elif folder.is_dir():
                self.notes.append(f"{claim.name}: {folder} has no {RUNS} (a report made before reports kept "
                                  f"their runs): report it from its store")
            self._inputs[claim.name] = found
        return self._inputs[claim.name]

    def budgets(self, claim: Claim) -> list[str]:
        inputs = self._read(claim)
        present = {r.tags.get("claim_budget") for r in inputs.records} if inputs else set()
        return [b for b in BUDGETS if b in present]

    def inputs(self, claim: Claim, budget: str, workdir: Path) -> tuple[Inputs, Context] | None:
        inputs = self._read(claim)
        if inputs is None:
            return None
        records = [r for r in inputs.records if r.tags.get("claim_budget") == budget]
        if not records:
            return None
        kept = Inputs(records, inputs.histories, inputs.artifacts)
        return kept, kept.context(workdir)

    def reported(self, claim: Claim, written) -> None:
        """No store: no report run."""

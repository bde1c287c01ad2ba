"""`Trainer`: the state of one run and its pieces (a step, validation, probes, testing,
checkpoints). `train()` (train.py) drives it; the trainer never branches on a variant or task
name: the task supplies data, loss and metrics, the model supplies extra loss terms and
computation paths, the tracker takes what is logged.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import TYPE_CHECKING

import torch

from harness.training import checkpoint, numerics, probes, progress as live
from harness.training.optim import lr_factor, make_optimizer
from harness.device import resolve_device
from harness.training.context_schedule import context_steps
from harness.training.evaluation import baseline_of, criterion_of, eval_steps, evaluate, progress
from harness.training.model import SequenceModel, resolve_cell_options
from harness.training.outcomes import Diverged, StopReason, at_once
from harness.tracking import Tracker

# resolve_device and TrainConfig live in leaf modules so that the spec need not import this
# module (which imports the spec); how a run ends (outcomes.py) is shared with its callers.

if TYPE_CHECKING:
    from harness.training.spec import RunSpec


class Trainer:
    """State of one run; `train()` drives it. Kept as an object so checkpoints are one dict."""

    def __init__(self, spec: "RunSpec", tracker: Tracker, report=None, progress: bool = True):
        self.spec, self.tracker, self.report, self.progress = spec, tracker, report, progress
        self.cfg, self.track = spec.train, spec.track
        self.device = resolve_device(self.cfg.device)
        numerics.apply_determinism(self.cfg.deterministic)
        self.autocast = lambda: numerics.autocast(self.cfg.precision, self.device)
        self.task = spec.build_task()
        torch.manual_seed(self.cfg.seed)
        options = resolve_cell_options(spec.cell_class, spec.cell, self.task)
        self.spec = spec = dataclasses.replace(spec, cell=options)
        self.model = SequenceModel(spec.model, options, self.task).to(self.device)
        self.model.rnn.resolve_path(spec.model.path)  # an unknown path fails before anything is logged
        self.optimizer = make_optimizer(self.cfg, self.model.parameters())
        per_epoch = self.task.steps_per_epoch(self.cfg.batch_size)
        self.total = spec.total_steps(per_epoch)  # a dataset run: its epochs, capped by train.steps when set
        self.eval_every = self.cfg.eval_every or (per_epoch or max(1, self.total // 10))
        self.eval_at = eval_steps(self.cfg.eval_every, self.cfg.evals_per_doubling, self.total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(self.cfg, self.total))
        self.step = 0
        self.train_path: str | None = None  # the path of the training forward (probes use explicit)
        self.best = {"value": None, "step": -1, "stale": 0}
        self.best_model = None
        self.criterion = criterion_of(self.task)
        self.solved_at: int | None = None  # the first evaluation at which the criterion held on validation
        self.best_progress = 0.0  # how far toward the criterion validation got (0 = baseline, 1 = met)
        self.carry = None  # a stateful task's state, carried from one batch to the next
        self.context_curve = None  # the context ablation's curve (track.context_probe), logged as a CSV
        self.context_rows: list[dict] = []  # the curves of the probes during training (track.context_points)
        self.context_at = context_steps(self.track, self.task, self.total)
        self.ended: StopReason | None = None  # why the loop ended, once it has (a resume then only tests)
        self.timing = {"context": 0.0, "run": 0.0}  # seconds: the context probes, the whole run (resumes add up)
        self.clock = time.perf_counter()
        self.probe_rows: list[dict] = []
        self.last_val: dict[str, float] = {}
        self.probe_at = sorted({round(i * (self.total - 1) / max(1, self.track.probe_points - 1))
                                for i in range(self.track.probe_points)}) if self.track.probe else []

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.spec.to_dict(), "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": checkpoint.rng_state(), "best": dict(self.best), "best_model": self.best_model,
                "probe_rows": self.probe_rows, "last_val": self.last_val,
                "solve": {"at": self.solved_at, "progress": self.best_progress},
                "carry": None if self.carry is None else list(self.carry),
                "context_rows": self.context_rows, "timing": self.elapsed(),
                "ended": None if self.ended is None else self.ended.value}

    def restore(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        checkpoint.set_rng_state(payload["rng"])
        self.step, self.best, self.best_model = payload["step"], payload["best"], payload["best_model"]
        self.probe_rows, self.last_val = payload["probe_rows"], payload["last_val"]
        solve = payload.get("solve") or {}
        self.solved_at, self.best_progress = solve.get("at"), solve.get("progress", 0.0)
        self.carry = None if payload.get("carry") is None else tuple(payload["carry"])
        self.context_rows = payload.get("context_rows", [])
        self.timing, self.clock = dict(payload.get("timing") or self.timing), time.perf_counter()
        self.ended = None if payload.get("ended") is None else StopReason(payload["ended"])

    def elapsed(self) -> dict[str, float]:
        """Seconds so far: the run's (over every resume) and its context probes'."""
        now = time.perf_counter()
        self.timing["run"] += now - self.clock
        self.clock = now
        return dict(self.timing)

    def save(self, path) -> None:
        """Write the checkpoint after what was logged up to now is in the store (a resumed run
        continues from here; a kill right after must not lose the values queued before it)."""
        if self.track.keep_checkpoint == "never":
            return
        self.tracker.flush()
        checkpoint.save(path, self.state())

    # -- pieces of a step --------------------------------------------------------------------
    def probe_batch(self):
        batch = next(self.task.eval_batches("val", seed=self.cfg.seed, device=self.device))
        return batch.head(self.track.probe_batch)

    def probe(self) -> None:
        batch = self.probe_batch()
        profile = probes.gradient_profile(self.model, self.task, batch)
        self.probe_rows += probes.profile_rows(self.step, profile)
        self.tracker.log_metrics(profile.summary(self.track.probe_threshold), self.step)

    def validate(self) -> dict[str, float]:
        with self.autocast():
            metrics = evaluate(self.model, self.task, "val", self.cfg.seed, self.device)
        logged = {f"val_{k}": v for k, v in metrics.items()}
        if self.track.gate_stats:
            with torch.no_grad():
                batch = self.probe_batch()
                self.model.eval()
                _, _, traces = self.model.trace(self.model.encode(batch), batch)
                self.model.train()
            logged.update(probes.gate_statistics(traces))
        self.tracker.log_metrics(logged, self.step)
        self.last_val = metrics
        value = metrics[self.task.primary_metric]
        if not math.isfinite(value):
            raise Diverged(f"non-finite validation {self.task.primary_metric} at step {self.step}")
        better = self.best["value"] is None or (
            value > self.best["value"] if self.task.higher_is_better else value < self.best["value"])
        if self.criterion is not None and self.criterion.metric in metrics:
            self.best_progress = max(self.best_progress, progress(self.task, self.criterion, metrics))
            if self.solved_at is None and self.criterion.met(metrics[self.criterion.metric]):
                self.solved_at = self.step
        if better:
            self.best = {"value": value, "step": self.step, "stale": 0}
            self.best_model = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
        else:
            self.best["stale"] += 1
        if self.report is not None:
            self.report(self.step, metrics)
        return metrics

    # -- the loop ----------------------------------------------------------------------------
    def loop(self, flag: dict, ckpt_path) -> StopReason:
        """Train until the step budget is spent or an early stop; returns why it stopped.
        `flag["signal"]` is the name of a caught signal ("SIGINT", "SIGTERM"), checked after each step.
        A run resumed after its loop had ended (stopped while testing) trains no further."""
        if self.ended is not None:
            return self.ended
        cfg, task, model = self.cfg, self.task, self.model
        window = {"loss": torch.zeros((), device=self.device), "reg": 0.0, "gnorm": torch.zeros((), device=self.device),
                  "steps": 0, "t0": time.perf_counter()}
        bar = live.bar(self.progress, total=self.total, initial=self.step, desc=live.name(self.spec))
        model.train()
        try:
            while self.step < self.total:
                if self.step in self.probe_at:
                    self.probe()
                batch = task.train_batch(self.step, cfg.batch_size, seed=cfg.seed, device=self.device)
                if task.stateful and task.starts_stream(self.step, cfg.batch_size):
                    self.carry = None
                with self.autocast():  # train.precision; the backward runs outside it
                    logits, state = model(batch, state=self.carry if task.stateful else None)
                    loss = task.loss(logits, batch)
                    reg = model.regularizer(state)
                    objective = loss if reg is None else loss + reg
                if task.stateful:  # truncated BPTT: the next chunk starts here, without a gradient path back
                    self.carry = tuple(s.detach() for s in state)
                self.train_path = model.path
                self.optimizer.zero_grad(set_to_none=True)
                objective.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else math.inf)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                window["loss"] += loss.detach()
                window["gnorm"] = torch.maximum(window["gnorm"], gnorm.detach())
                window["reg"] += 0.0 if reg is None else reg.detach()
                window["steps"] += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    self.log_window(window, bar)
                if self.step in self.context_at:  # before the checkpoint an evaluation may write here
                    self.probe_context()
                if (self.step in self.eval_at if self.eval_at is not None else self.step % self.eval_every == 0) \
                        or self.step == self.total:
                    metrics = self.validate()
                    bar.set_postfix_str(f"val_{task.primary_metric}={metrics[task.primary_metric]:.4g}")
                    if cfg.checkpoint_every == 0:
                        self.save(ckpt_path)
                    if cfg.patience and self.best["stale"] >= cfg.patience:
                        return StopReason.EARLY_STOPPED
                    if cfg.stop_when_solved and self.solved_at is not None:
                        return StopReason.SOLVED
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save(ckpt_path)
                if flag["signal"]:
                    return StopReason(flag["signal"])
        finally:
            bar.close()
        return StopReason.DONE

    def probe_context(self, log: bool = True) -> dict[str, float]:
        """The context ablation (harness/training/context.py) of the model as it is now, on the test
        split's seeded problems; its curve joins context_rows with this step. log: a probe during
        training, which records its context_* metrics at this step and measures the cut context
        only (drop: the effective context; shuffle and replace cost 8x more and run at the end)."""
        from harness.training import context

        started = time.perf_counter()
        with live.phase(self.progress, live.name(self.spec), f"context probe at step {self.step}"):
            found, curve = context.probe(self.model, self.task, window=self.track.context_window,
                                         count=self.track.context_problems, seed=self.cfg.seed,
                                         modes=("drop",) if log else context.MODES)
        self.context_rows += curve.assign(step=self.step).to_dict("records")
        self.timing["context"] += time.perf_counter() - started
        if log:
            self.tracker.log_metrics(found, self.step)
        return found

    def log_window(self, window: dict, bar) -> None:
        loss = window["loss"].item() / window["steps"]
        gnorm = window["gnorm"].item()
        if not math.isfinite(loss):
            raise Diverged(f"non-finite training loss at step {self.step}")
        if not math.isfinite(gnorm):
            raise Diverged(f"non-finite gradient norm at step {self.step}")
        now = time.perf_counter()
        metrics = {"train_loss": loss, "grad_norm_max": gnorm, "lr": self.scheduler.get_last_lr()[0],
                   "steps_per_second": window["steps"] / max(1e-9, now - window["t0"])}
        if isinstance(window["reg"], torch.Tensor):
            metrics["regularizer"] = window["reg"].item() / window["steps"]
        self.tracker.log_metrics(metrics, self.step)
        bar.set_postfix_str(f"loss={loss:.4g}")
        window.update(loss=torch.zeros((), device=self.device), reg=0.0, steps=0, t0=now,
                      gnorm=torch.zeros((), device=self.device))

    def solve_metrics(self) -> dict[str, float]:
        """solved (the criterion held on validation at some evaluation), steps_to_solve and
        sequences_to_solve (when solved), and solve_cost: steps_to_solve when solved, else
        (2 - progress) x the step budget, so every solved run costs less than every unsolved one
        and an unsolved run that came closer costs less (a tuning objective, harness/reproduce/stages.py)."""
        out = {"solved": float(self.solved_at is not None)}
        if self.solved_at is not None:
            out.update(steps_to_solve=float(self.solved_at),
                       sequences_to_solve=float(self.solved_at * self.cfg.batch_size),
                       solve_cost=float(self.solved_at))
        else:
            out["solve_cost"] = float(self.total * (2.0 - self.best_progress))
        return out

    def finish(self, flag: dict) -> dict[str, float]:
        """Test the best-validation weights; log the final metrics, figures and artifacts. A signal
        (`flag`, from `interruptible`) during the test set or context ablation raises Interrupted."""
        final_val = dict(self.last_val)
        if self.best_model is not None:
            self.model.load_state_dict(self.best_model)
        with self.autocast(), live.phase(self.progress, live.name(self.spec), "test set"), at_once(flag):
            test = evaluate(self.model, self.task, "test", self.cfg.seed, self.device)
        metrics = {f"val_{k}": v for k, v in final_val.items()}
        metrics[f"best_val_{self.task.primary_metric}"] = self.best["value"]
        metrics.update({f"test_{k}": v for k, v in test.items()})
        # the memoryless predictor's test metrics beside the model's: a report reads them from the run,
        # with no need to rebuild the task (for imdb_lm the unigram model, which reads the archive)
        metrics.update({f"baseline_{k}": v for k, v in baseline_of(self.task).items()})
        if self.criterion is not None:
            metrics["test_solved"] = float(self.criterion.met(test[self.criterion.metric]))
            metrics.update(self.solve_metrics())
        if self.probe_rows:
            last = max(r["step"] for r in self.probe_rows)
            rows = [r for r in self.probe_rows if r["step"] == last]
            profile = probes.GradientProfile(
                grad_h=torch.tensor([r["grad_h_norm"] for r in rows]).numpy(),
                grad_x=torch.tensor([r["grad_x_norm"] for r in rows]).numpy())
            metrics.update(profile.summary(self.track.probe_threshold))
        if self.track.context_probe and hasattr(self.task, "context_problems"):
            import pandas as pd

            with at_once(flag):
                metrics.update(self.probe_context(log=False))
            self.context_curve = pd.DataFrame(self.context_rows)
            timing = self.elapsed()
            metrics.update(context_probe_seconds=timing["context"],
                           context_probe_share=timing["context"] / max(timing["run"], 1e-9))
        self.tracker.log_metrics({k: v for k, v in metrics.items() if not k.startswith("val_")}, self.step)
        # How long the run ran, summed over its resumes without the pauses between them (its start
        # and end times span those): kept out of `metrics`, the results, which a resume reproduces.
        self.tracker.log_metrics({"run_seconds": self.elapsed()["run"]}, self.step)
        return metrics

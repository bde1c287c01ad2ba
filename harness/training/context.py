"""Context ablation (Khandelwal, He, Qi & Jurafsky 2018, "Sharp Nearby, Fuzzy Far Away: How
Neural Language Models Use Context"): how much of its context does a trained model use?

For a fixed, seeded set of prediction problems (each: the W tokens before a prediction point,
and its target), the model is scored with its context cut or perturbed beyond a distance d:
  drop     only the last d tokens are seen (the state is reset d tokens back)
  shuffle  all W tokens are seen, but those farther than d are in a random order (order vs content)
  replace  those farther than d are replaced by random words drawn from the training unigram
           distribution (content removed, length kept)
d runs over a geometric grid (ratio about √2) up to W; "full" is d = W. The **effective
context** is the smallest grid d whose drop-loss is within `tolerance` (1% by default) of the
full-context loss, so its resolution is the grid's (Khandelwal et al. read it off the same
curve; they report ~200 tokens for an LSTM LM, word order mattering within ~50).

The probe knows nothing of tasks or models: the caller passes the windows, their targets and
a `score` function (ids (N, T), lengths (N,), targets (N,)) -> {"loss": (N,), ...} for
problems whose context is the first lengths[n] tokens of row n. Tasks build both
(`context_problems` and `score_contexts`).
"""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd
import torch
from torch import Tensor

MODES = ("drop", "shuffle", "replace")
TOLERANCE = 0.01

Score = Callable[[Tensor, Tensor, Tensor], dict[str, Tensor]]


def distances(window: int, ratio: float = math.sqrt(2)) -> list[int]:
    """The geometric grid 1, 2, 3, 4, 6, 8, 11, 16, ... (ratio √2, rounded, distinct) below the
    window W, then W."""
    out, k = [], 0
    while True:
        d = int(round(ratio ** k))
        k += 1
        if d >= window:
            return out + [window]
        if not out or d > out[-1]:
            out.append(d)


def ablate(ids: Tensor, lengths: Tensor, d: int, mode: str, sample: Callable[[torch.Generator, int], Tensor],
           gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """One ablation of left-aligned contexts ids (N, W) with lengths (N,): their last d tokens
    are kept as they are; what lies farther back is dropped, shuffled or replaced.
    Returns (ids (N, W'), lengths (N,)), still left-aligned."""
    N, W = ids.shape
    pos = torch.arange(W).unsqueeze(0)  # (1, W)
    keep_from = (lengths - d).clamp(min=0).unsqueeze(1)  # (N, 1): the first kept position
    if mode == "drop":
        new_len = lengths.clamp(max=d)
        index = (pos + keep_from).clamp(max=W - 1)  # shift the kept tail to the front
        out = ids.gather(1, index)
        return torch.where(pos < new_len.unsqueeze(1), out, 0), new_len
    far = pos < keep_from  # (N, W) the tokens farther than d
    if mode == "replace":
        return torch.where(far, sample(gen, N * W).view(N, W).to(ids.dtype), ids), lengths
    if mode == "shuffle":
        # a random key per far token, real keys ordering only the far ones: sorting permutes them
        keys = torch.rand(N, W, generator=gen) + torch.where(far, 0.0, 2.0 + pos.float())
        order = keys.argsort(dim=1)
        return ids.gather(1, order), lengths
    raise ValueError(f"unknown ablation mode {mode!r}; modes: {', '.join(MODES)}")


@torch.no_grad()
def curve(score: Score, ids: Tensor, lengths: Tensor, targets: Tensor, grid: list[int], sample, *,
          seed: int = 0, modes=MODES, chunk: int = 256) -> pd.DataFrame:
    """Mean metrics of `score` for every (mode, d): DataFrame(mode, distance, metric, value, sem),
    with mode "full" for the unablated contexts (d = W). sem = standard error over problems."""
    gen = torch.Generator().manual_seed(seed)
    rows = []

    def measure(mode: str, d: int, x: Tensor, n: Tensor) -> None:
        parts: dict[str, list[Tensor]] = {}
        for i in range(0, len(x), chunk):
            width = int(n[i:i + chunk].max())  # no column past the longest context of the chunk
            for key, value in score(x[i:i + chunk, :width], n[i:i + chunk], targets[i:i + chunk]).items():
                parts.setdefault(key, []).append(value.detach().float().cpu())
        for key, values in parts.items():
            v = torch.cat(values)
            rows.append({"mode": mode, "distance": d, "metric": key, "value": float(v.mean()),
                         "sem": float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0})

    measure("full", ids.shape[1], ids, lengths)
    for mode in modes:
        for d in grid:
            if d >= ids.shape[1]:
                continue  # d = W is the full context
            x, n = ablate(ids, lengths, d, mode, sample, gen)
            measure(mode, d, x, n)
    return pd.DataFrame(rows)


def effective_context(curve_frame: pd.DataFrame, *, metric: str = "loss", mode: str = "drop",
                      tolerance: float = TOLERANCE) -> tuple[int, bool]:
    """(d, censored): the smallest grid d whose `mode` value of `metric` is within `tolerance`
    (relative) of the full-context value; censored = True when only the full window W is
    (the model uses all the context it was given: d >= W)."""
    rows = curve_frame[curve_frame["metric"] == metric]
    full = rows[rows["mode"] == "full"]
    if full.empty:
        raise ValueError("the curve has no full-context row")
    window, reference = int(full["distance"].iloc[0]), float(full["value"].iloc[0])
    part = rows[rows["mode"] == mode].sort_values("distance")
    within = part[part["value"] <= reference * (1 + tolerance)]
    if within.empty:
        return window, True
    return int(within["distance"].iloc[0]), False


def probe(model, task, *, window: int, count: int, seed: int, tolerance: float = TOLERANCE,
          modes: tuple[str, ...] = MODES) -> tuple[dict, pd.DataFrame]:
    """The ablation of a trained model on `count` seeded problems of the task's test split:
    (metrics, curve). Metrics: context_effective (drop; d >= window when censored),
    context_effective_censored, context_order (shuffle: how far back word order matters),
    context_content (replace), context_full_loss and, where the task scores it, context_full_accuracy;
    `modes` limits the ablations (and so the metrics) to some of drop, shuffle, replace."""
    ids, lengths, targets = task.context_problems("test", count, window, seed)
    was_training = model.training
    model.eval()
    try:
        frame = curve(lambda x, n, y: task.score_contexts(model, x, n, y), ids, lengths, targets,
                      distances(ids.shape[1]), task.sample_words, seed=seed, modes=modes)
    finally:
        model.train(was_training)
    metrics = {}
    for name, mode in (("context_effective", "drop"), ("context_order", "shuffle"), ("context_content", "replace")):
        if mode not in modes:
            continue
        d, censored = effective_context(frame, mode=mode, tolerance=tolerance)
        metrics[name] = float(d)
        metrics[f"{name}_censored"] = float(censored)
    full = frame[frame["mode"] == "full"].set_index("metric")["value"]
    metrics["context_full_loss"] = float(full["loss"])
    if "accuracy" in full:
        metrics["context_full_accuracy"] = float(full["accuracy"])
    return metrics, frame

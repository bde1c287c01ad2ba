"""A real `mlflow server` on 127.0.0.1 serves a harness run: params, metric curves, the
gradient-flow figure. Checked through the server's REST API, as the UI reads it."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from helpers import http_get, mlflow_server, tiny_spec

from harness.training.train import train
from harness.tracking import Outcome, open_runs, open_tracker


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("server")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_tracker(store, "server-test")
    tracker.prepare()  # create the schema before the server starts
    with mlflow_server(store, tmp_path) as base:
        yield base, store, tracker


def test_server_serves_a_run_with_curves_and_gradient_figure(server, tmp_path):
    base, store, tracker = server
    spec = tiny_spec("lstm", steps=20, track={"checkpoint_dir": str(tmp_path / "ck")})
    result = train(spec, tracker, progress=False)
    api = f"{base}/api/2.0/mlflow"

    found = _post(f"{api}/runs/search", {"experiment_ids": [tracker.experiment_id]})["runs"]
    assert [r["info"]["run_id"] for r in found] == [result.run_id]
    run = found[0]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["model.variant"] == "lstm" and params["task.name"] == "recall"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert {"test_accuracy", "val_accuracy", "gradient_horizon", "gate_forget_mean"} <= set(metrics)

    query = urllib.parse.urlencode({"run_id": result.run_id, "metric_key": "val_accuracy"})
    history = json.loads(http_get(f"{api}/metrics/get-history?{query}"))["metrics"]
    assert [m["step"] for m in history] == list(range(10, 21, 10))
    query = urllib.parse.urlencode({"run_id": result.run_id, "metric_key": "train_loss"})
    assert len(json.loads(http_get(f"{api}/metrics/get-history?{query}"))["metrics"]) == 2

    listed = json.loads(http_get(f"{api}/artifacts/list?run_id={result.run_id}"))["files"]
    assert {"config.toml", "gradient_flow.png", "gradient_flow.csv"} <= {f["path"] for f in listed}
    png = http_get(f"{base}/get-artifact?" + urllib.parse.urlencode({"path": "gradient_flow.png", "run_uuid": result.run_id}))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")  # the figure the UI shows
    config = http_get(f"{base}/get-artifact?" + urllib.parse.urlencode({"path": "config.toml", "run_uuid": result.run_id}))
    assert b'variant = "lstm"' in config


def test_a_run_through_the_server_uri_is_tracked_and_read_back(server, tmp_path):
    """open_tracker on the http URI: the probe passes, the experiment gets its kind over REST,
    the outcome is tagged, and the neutral table reads the run back through the server."""
    base, _, _ = server
    tracker = open_tracker(base, "over-http")
    assert tracker.local_dir is None  # a remote store: checkpoints go to the user cache unless told
    spec = tiny_spec("gru", steps=10, track={"checkpoint_dir": str(tmp_path / "ck")})
    result = train(spec, tracker, progress=False)
    experiment = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
    kinds = {e["name"]: {t["key"]: t["value"] for t in e.get("tags", [])} for e in experiment}
    assert kinds["over-http"]["mlflow.experimentKind"] == "custom_model_development"
    table = open_runs(base).table("over-http")
    row = table.set_index("run_id").loc[result.run_id]
    assert row["outcome"] is Outcome.FINISHED and row["model.variant"] == "gru" and row["train.steps"] == 10
    assert row["test_accuracy"] == result.metrics["test_accuracy"]

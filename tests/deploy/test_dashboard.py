"""The Grafana dashboard parses, and every metric it queries is one a live server exports."""

import json
import re

import httpx
import pytest

from tests import onnx_models
from tests.deploy.tools import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "modelserve.json"
# Series that Prometheus makes itself, not the service.
PROMETHEUS_OWN = {"up"}
# What the issue asks the dashboard to show, as the metrics that show it.
REQUIRED = {
    "modelserve_inference_request_success_total",      # request rate
    "modelserve_request_duration_seconds_bucket",      # p50 / p99 latency
    "modelserve_batch_size_sum",                       # batch size
    "modelserve_inference_pending_requests",           # queue depth
    "modelserve_inference_request_failure_total",      # errors by reason
}


def expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return exprs


def queried_metrics(dashboard: dict) -> set[str]:
    names = set()
    for expr in expressions(dashboard):
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not metric names
        names |= set(re.findall(r"\b(modelserve_[a-z_]+|up)\b", expr))
    return names


@pytest.fixture(scope="module")
def exported(tmp_path_factory, module_server) -> set[str]:
    """Sample names on /metrics after a success and a failure, with batching on."""
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "ident")
    url = module_server(repo, args=["--max-batch-size", "8"])
    ok = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    bad = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    assert httpx.post(f"{url}/v2/models/ident/infer", json=ok).status_code == 200
    assert httpx.post(f"{url}/v2/models/ident/infer", json=bad).status_code == 400
    text = httpx.get(f"{url}/metrics").text
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_dashboard_is_grafana_json_with_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "modelserve" and len(dashboard["panels"]) >= 6
    assert all(panel["targets"] and panel["gridPos"] for panel in dashboard["panels"])


def test_dashboard_shows_what_operators_need():
    assert REQUIRED <= queried_metrics(json.loads(DASHBOARD.read_text()))


def test_every_queried_metric_is_exported(exported):
    queried = queried_metrics(json.loads(DASHBOARD.read_text())) - PROMETHEUS_OWN
    assert queried - exported == set(), f"the dashboard queries metrics the service does not export: {queried - exported}"


def test_panels_split_by_model():
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if "modelserve_" in target["expr"]:
                assert 'model=~"$model"' in target["expr"], f"{panel['title']}: not filtered by $model"

"""The deployment files pass their own tools' checks: hadolint, compose, nginx -t, promtool."""

import json
import re

import pytest
import yaml

from service.settings import Settings
from tests.conftest import free_port
from tests.deploy.tools import DEPLOY, ROOT, local_nginx_config, nginx_command, run, tool

DOCKERFILES = ["Dockerfile", "Dockerfile.gpu", "deploy/nginx/Dockerfile.smoke", "deploy/prometheus/Dockerfile.smoke"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_has_no_warnings(dockerfile):
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", dockerfile)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_service_images_run_unprivileged_with_a_readiness_healthcheck(dockerfile):
    text = (ROOT / dockerfile).read_text()
    runtime = text.rsplit("\nFROM ", 1)[1]  # the last stage is the image that runs
    assert "\nUSER 10001\n" in runtime
    assert "HEALTHCHECK" in runtime and "/v2/health/ready" in runtime
    assert 'ENTRYPOINT ["python", "-m", "service"]' in runtime
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and not any("train" in line or "torch" in line for line in installs)  # no torch


def test_compose_file_is_valid():
    result = run(tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_stack_shape():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"modelserve", "nginx", "prometheus", "grafana"}
    assert services["modelserve"]["deploy"] == {**services["modelserve"]["deploy"], "mode": "replicated", "replicas": 2}
    for service in services.values():  # every file a service mounts is in the repo
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{source} is mounted but missing"


def test_smoke_override_is_valid():
    result = run(tool("docker-compose"), "-f", "docker-compose.yml", "-f", "deploy/compose.smoke.yml", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_compose_config(tmp_path):
    config = local_nginx_config(tmp_path, [free_port(), free_port()], free_port())
    result = run(*nginx_command(tool("nginx"), config), "-t")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_promtool_accepts_the_prometheus_config():
    result = run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_datasource():
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/modelserve.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers[0]["options"]["path"]
    dashboard = json.loads((DEPLOY / "grafana/dashboards/modelserve.json").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {datasources[0]["uid"]}


def test_nginx_closes_idle_upstream_connections_before_the_replicas_do():
    """Else nginx may send a request on a connection a replica is closing: infer is retried on
    the next replica, /v2/repository/... is not (docs/RELIABILITY.md)."""
    upstream = re.search(r"upstream modelserve \{(.*?)\}", (DEPLOY / "nginx" / "nginx.conf").read_text(), re.DOTALL)
    idle = re.search(r"^\s*keepalive_timeout (\d+)s;", upstream[1], re.MULTILINE)
    assert idle, "deploy/nginx/nginx.conf: the upstream block sets no keepalive_timeout (nginx's default is 60 s)"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    replicas = compose["services"]["modelserve"].get("environment") or {}
    replica_idle = float(dict(replicas).get("MODELSERVE_KEEP_ALIVE_TIMEOUT_S",
                                              Settings.model_fields["keep_alive_timeout_s"].default))
    assert int(idle[1]) < replica_idle

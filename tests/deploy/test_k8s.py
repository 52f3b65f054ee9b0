"""deploy/k8s: the manifests pass Kubernetes' schemas (kubernetes-validate, strict, no download)
and agree with each other and with the image: ports, probes, labels, user."""

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.app import create_app
from service.settings import Settings
from tests.deploy.tools import DEPLOY, ROOT

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(K8S.rglob("*.yaml"))
KSERVE_SCHEMA = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json"
RUNTIME_SCHEMA = Path(__file__).parent / "schemas" / "kserve-servingruntime-v1alpha1.json"
VERSION = kubernetes_validate.latest_version()


def load(relative: str) -> dict:
    [document] = list(yaml.safe_load_all((K8S / relative).read_text()))
    return document


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_passes_its_schema(path):
    for document in yaml.safe_load_all(path.read_text()):
        if document["apiVersion"].startswith("serving.kserve.io/"):
            runtime = document["kind"].endswith("ServingRuntime")
            jsonschema.validate(document, json.loads((RUNTIME_SCHEMA if runtime else KSERVE_SCHEMA).read_text()))
            # A predictor's or runtime's containers are Kubernetes containers: check them as a Pod's.
            containers = document["spec"]["containers"] if runtime else document["spec"]["predictor"].get("containers")
            if containers:
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
                       "spec": {"containers": containers}}
                kubernetes_validate.validate(pod, VERSION, strict=True)
        else:
            kubernetes_validate.validate(document, VERSION, strict=True)


def test_a_wrong_field_is_caught():
    """The validator is strict: a misspelt field fails (else the test above proves little)."""
    deployment = load("deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def probes(container: dict) -> dict[str, str]:
    return {kind: container[kind]["httpGet"]["path"] for kind in ("readinessProbe", "livenessProbe") if kind in container}


def test_probes_are_real_routes():
    routes = set(create_app(Settings()).openapi()["paths"])
    containers = [load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0],
                  load("kserve/inferenceservice.yaml")["spec"]["predictor"]["containers"][0]]
    for container in containers:
        assert probes(container) == {"readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live"}
        assert set(probes(container).values()) <= routes


def test_service_deployment_and_hpas_agree():
    deployment, service = load("deployment.yaml"), load("service.yaml")
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert str(port_names["http"]) == env["MODELSERVE_PORT"]
    for hpa in ("hpa.yaml", "autoscaling-on-queue/hpa.yaml"):
        target = load(hpa)["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_pods_run_as_the_images_unprivileged_user():
    user = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER "))
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and str(pod["securityContext"]["runAsUser"]) == user
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["terminationGracePeriodSeconds"] > float(
        next(e["value"] for e in container["env"] if e["name"] == "MODELSERVE_SHUTDOWN_TIMEOUT_S"))


def test_kserve_predictor_serves_v2_on_the_port_kserve_routes_to():
    container = load("kserve/inferenceservice.yaml")["spec"]["predictor"]["containers"][0]
    assert container["name"] == "kserve-container"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELSERVE_PORT"] == "8080" == str(container["ports"][0]["containerPort"])
    assert str(container["securityContext"]["runAsUser"]) == "10001"


def test_service_publishes_grpc_as_h2c_on_the_containers_grpc_port():
    service, deployment = load("service.yaml"), load("deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert str(port_names[grpc["targetPort"]]) == env["MODELSERVE_GRPC_PORT"] == str(Settings().grpc_port)


def test_kserve_runtime_serves_onnx_over_v2_and_grpc_v2_and_an_inferenceservice_uses_it():
    runtime, service = load("kserve/servingruntime.yaml"), load("kserve/inferenceservice-runtime.yaml")
    assert runtime["kind"] == "ClusterServingRuntime"
    assert {"name": "onnx", "version": "1", "autoSelect": True, "priority": 1} in runtime["spec"]["supportedModelFormats"]
    assert runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    [container] = runtime["spec"]["containers"]
    # the flags it passes are the service's own, and point at KServe's mount and ports
    settings = Settings(_cli_parse_args=container["args"])
    assert (str(settings.model_repository), settings.port, settings.grpc_port) == ("/mnt/models", 8080, 9000)
    assert probes(container) == {"readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live"}
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["modelFormat"]["name"] == "onnx"
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"] and model["storageUri"]

"""The Kubernetes manifests under deploy/kubernetes: valid against the Kubernetes API's
own schemas (kubernetes-validate, offline), and true to the panel's settings and probes."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes the manifests are written for (native preStop sleep: 1.30).
KUBERNETES = "1.30.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str, name: str = "assist-panel") -> dict[str, Any]:
    return next(doc for _, doc in documents()
                if doc["kind"] == kind and doc["metadata"]["name"] == name)


@pytest.mark.parametrize(("file", "doc"), documents(),
                         ids=[f"{f}:{d['kind']}:{d['metadata']['name']}" for f, d in documents()])
def test_each_manifest_is_valid_kubernetes(file: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_configured_variables_are_settings_and_secrets_are_secret() -> None:
    fields = Settings.model_fields
    config = by_kind("ConfigMap")["data"]
    secret = by_kind("Secret")["stringData"]
    for name in [*config, *secret]:
        if name.startswith("ASSIST_"):
            assert name.removeprefix("ASSIST_").lower() in fields, name
    for name in secret:  # only secret settings in the Secret, and none of them elsewhere
        annotation = str(fields[name.removeprefix("ASSIST_").lower()].annotation)
        assert "SecretStr" in annotation, name
    for name in config:  # ASSIST_REDIS_URL was in the ConfigMap: it may hold a password
        if name.startswith("ASSIST_"):
            annotation = str(fields[name.removeprefix("ASSIST_").lower()].annotation)
            assert "SecretStr" not in annotation, name
    assert not set(config) & set(secret)
    config_only = {k.removeprefix("ASSIST_").lower(): v for k, v in config.items()
                   if k.startswith("ASSIST_")}
    Settings(**config_only, **{k.removeprefix("ASSIST_").lower(): v  # values parse
                               for k, v in secret.items()})


def test_pods_have_time_to_end_their_streams() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    panel = pod["containers"][0]
    grace = float(by_kind("ConfigMap")["data"]["ASSIST_SHUTDOWN_GRACE_S"])
    pre_stop = panel["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 5
    assert panel["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert panel["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert panel["args"] == ["serve"]


def test_the_autoscaler_alone_sets_the_replicas_and_a_drain_takes_one_at_a_time() -> None:
    # Broke: replicas: 2 in the Deployment scaled the autoscaler's pods back at every
    # apply, and minAvailable: 1 let a drain take all but one of twenty.
    deployment = by_kind("Deployment")["spec"]
    assert "replicas" not in deployment
    assert by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert by_kind("PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1, "selector": deployment["selector"]}
    spread = deployment["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname"]


def test_the_sync_job_builds_snapshots_with_the_panels_settings() -> None:
    # Broke: without the panel's ConfigMap and Secret, the job embedded with the default
    # embedder while the replicas used another, and every replica refused its snapshots.
    job = by_kind("CronJob", "assist-panel-kb-sync")["spec"]["jobTemplate"]["spec"]
    sources = job["template"]["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": "assist-panel"}} in sources
    assert {"secretRef": {"name": "assist-panel"}} in sources


def test_the_autoscaler_scales_the_panel_on_cpu() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == by_kind("Deployment")["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0][
        "resources"]["requests"]["cpu"]  # utilisation is of the request


def test_only_the_ingress_may_say_who_the_client_is() -> None:
    # Broke: FORWARDED_ALLOW_IPS was 10.0.0.0/8, so an agent whose own address was in
    # it (many company networks are) could send X-Forwarded-For and choose the address
    # its sign-in rate limit counted under.
    trusted = by_kind("ConfigMap")["data"]["FORWARDED_ALLOW_IPS"]
    for entry in trusted.split(","):
        network = ipaddress.ip_network(entry.strip(), strict=True)
        # A pod network (a /16), never a company-wide private range (a /8, a /12).
        assert network.prefixlen >= (16 if network.version == 4 else 64), entry

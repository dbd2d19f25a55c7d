"""Render deploy/k8s with the real kustomize (kubectl's built-in, or a kustomize binary) and validate the
manifests offline: built-in kinds against the Kubernetes OpenAPI schemas that `kubernetes-validate` ships,
KEDA's kinds against the schema of KEDA's CRDs (as `cloudcoil-models-keda` carries them, generated from
KEDA 2.16's CRDs), both strict: an unknown or misspelt field is an error, as `kubectl apply` with server-side
field validation would make it."""
from __future__ import annotations

import functools
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helpers import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu", "pinned")
# The oldest Kubernetes the manifests are meant for (HPA autoscaling/v2 and PDB policy/v1 are GA since
# 1.23 and 1.21; the namespace label kubernetes.io/metadata.name since 1.22) and the newest schemas shipped.
KUBE_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.skip("neither kubectl nor kustomize is installed: the manifests cannot be rendered")


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    result = subprocess.run([*kustomize_command(), str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _strict(node):
    """Close every object schema that lists its properties (a structural CRD prunes or rejects the rest)."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@functools.cache
def keda_validator(kind: str) -> jsonschema.Draft202012Validator:
    from cloudcoil.models.keda import v1alpha1

    return jsonschema.Draft202012Validator(_strict(getattr(v1alpha1, kind).model_json_schema(by_alias=True)))


def validate(doc: dict, version: str) -> None:
    """Raises on anything the cluster's schema refuses."""
    if doc["apiVersion"] == "keda.sh/v1alpha1":
        keda_validator(doc["kind"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def counts(docs) -> Counter:
    return Counter(doc["kind"] for doc in docs)


def of_kind(docs, kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    (doc,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def pod_specs(docs):
    """(workload name, pod spec, pod metadata) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"], doc["spec"]["template"]["metadata"]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]

"""KEDA's Redis trigger for the workers, derived from the broker URL instead of typed by hand:

    python deploy/k8s/keda_trigger.py "$CELERY_BROKER_URL" [queue] > deploy/k8s/base/keda-trigger.yaml

writes the patch the base kustomization applies to the ScaledObject `xray-worker`: the host and port, the
database index, TLS (``rediss://``) and the username of the URL, the list Celery fills (the queue name,
XRAY_QUEUE). The password never goes in: KEDA reads it from the Secret (TriggerAuthentication `xray-redis`,
key REDIS_PASSWORD). Run it again whenever CELERY_BROKER_URL changes (README, "Kubernetes").
"""
from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit

import yaml

LIST_LENGTH = "64"  # queued messages per worker pod: about 4 forward batches of 16


def trigger(broker_url: str, queue: str = "xray") -> dict:
    """The ScaledObject's one trigger; ValueError for a URL that is not Redis."""
    url = urlsplit(broker_url)
    if url.scheme not in ("redis", "rediss"):
        raise ValueError(f"KEDA's Redis trigger needs a redis:// or rediss:// broker URL, got {url.scheme or 'none'}://")
    if not url.hostname:
        raise ValueError("the broker URL names no host")
    database = (url.path or "/0").strip("/") or "0"
    if not database.isdigit():
        raise ValueError(f"the broker URL's database must be a number, got {database!r}")
    metadata = {
        "address": f"{url.hostname}:{url.port or 6379}",
        "databaseIndex": database,
        "enableTLS": "true" if url.scheme == "rediss" else "false",
        "listName": queue,
        "listLength": LIST_LENGTH,
        "activationListLength": "0",
    }
    if url.username:
        metadata["username"] = unquote(url.username)
    return {"type": "redis", "metadata": metadata, "authenticationRef": {"name": "xray-redis"}}


def patch(broker_url: str, queue: str = "xray") -> str:
    document = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "xray-worker"},
                "spec": {"triggers": [trigger(broker_url, queue)]}}
    return ("# Written by deploy/k8s/keda_trigger.py from CELERY_BROKER_URL (no password): do not edit by hand.\n"
            + yaml.safe_dump(document, sort_keys=False))


def main(argv: list[str]) -> None:
    if not 1 <= len(argv) <= 2:
        sys.exit(__doc__)
    try:
        sys.stdout.write(patch(*argv))
    except ValueError as exc:
        sys.exit(f"keda_trigger: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The few calls of Orthanc's REST API the bridge needs (https://orthanc.uclouvain.be/book/users/rest.html):
the change feed, an instance's tags and file, and storing a new instance."""
from __future__ import annotations

import httpx


class PacsError(Exception):
    """The PACS could not be reached or refused; the message says which call and why."""


class Orthanc:
    def __init__(self, url: str, username: str = "", password: str = "", timeout: float = 60.0, transport=None):
        auth = (username, password) if username else None
        self.client = httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PacsError(f"the PACS at {self.client.base_url} cannot be reached ({exc})") from None
        if response.status_code >= 400:
            raise PacsError(f"the PACS answered {method} {path} with HTTP {response.status_code}: {response.text[:200]}")
        return response

    def changes(self, since: int, limit: int = 100) -> dict:
        """{"Changes": [{"ChangeType", "ID", "Seq", "ResourceType"}, ...], "Done": bool, "Last": int}"""
        return self._call("GET", "/changes", params={"since": since, "limit": limit}).json()

    def tags(self, instance_id: str) -> dict:
        """The instance's main tags by keyword (Modality, SOPClassUID, ...)."""
        return self._call("GET", f"/instances/{instance_id}/simplified-tags").json()

    def file(self, instance_id: str) -> bytes:
        return self._call("GET", f"/instances/{instance_id}/file").content

    def store(self, data: bytes) -> dict:
        """Store a DICOM file; storing the same SOP instance again changes nothing."""
        return self._call("POST", "/instances", content=data, headers={"Content-Type": "application/dicom"}).json()

    def study_instances(self, study_instance_uid: str) -> list[dict]:
        """Every instance (with its main tags) of the study of that Study Instance UID."""
        found = self._call("POST", "/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": study_instance_uid}})
        instances = []
        for study in found.json():
            instances += self._call("GET", f"/studies/{study}/instances").json()
        return instances

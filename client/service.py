"""The service's API over HTTP, with the retries a long run needs: connection loss is retried with
growing pauses, 429 and 409 wait as long as Retry-After says, and every other error becomes a
ServiceError carrying the service's own message."""
from __future__ import annotations

import time

import httpx

RETRIES = 6


class ServiceError(Exception):
    """The service refused or could not be reached; str() is the message for the person."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


HINTS = {
    401: "the token is missing, wrong, expired or revoked: pass --token or set XRAY_TOKEN "
         "(make one on the service's account page or with `xray-admin create-token`)",
    413: "too large (per file, per request or your storage quota): send fewer or smaller images",
    415: "none of the files is a PNG, JPEG or DICOM radiograph",
}


def _message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase


class Api:
    def __init__(self, url: str, token: str | None, timeout: float = 120.0, sleep=time.sleep, transport=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self.sleep = sleep

    def request(self, method: str, path: str, *, files_factory=None, **kwargs) -> httpx.Response:
        """One request, retried on connection loss, 429 and 409; ``files_factory`` remakes the upload body."""
        pause = 1.0
        for attempt in range(RETRIES + 1):
            if files_factory is not None:
                kwargs["files"] = files_factory()
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise ServiceError(f"the service at {self.client.base_url} cannot be reached ({exc})") from None
                self.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            if response.status_code in (429, 409, 503) and attempt < RETRIES:
                self.sleep(float(response.headers.get("Retry-After") or pause))
                pause = min(pause * 2, 30.0)
                continue
            if response.status_code >= 400:
                hint = HINTS.get(response.status_code)
                raise ServiceError(f"HTTP {response.status_code}: {_message(response)}" + (f" ({hint})" if hint else ""),
                                   response.status_code)
            return response
        raise ServiceError("the service kept refusing (too many requests): try again later")

    def json(self, path: str, **kwargs) -> dict:
        return self.request("GET", path, **kwargs).json()

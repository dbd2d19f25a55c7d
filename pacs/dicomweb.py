"""Any DICOMweb PACS, through dicomweb-client: QIDO-RS finds the CR and DX instances, WADO-RS fetches one,
STOW-RS stores the results (PS3.18). The same four calls as pacs/orthanc.py, so the bridge does not care which.

QIDO-RS has no change feed, so each round lists the PACS's CR and DX instances (page by page) and the bridge
records the ones it has not seen. What it records is no UID: an instance is known by a keyed hash of its
Study, Series and SOP Instance UIDs (the key is XRAY_SECRET_KEY), and the UIDs themselves live only in this
process's memory, from the latest listing, for as long as it needs them to fetch the instance. So neither the
bridge's tables nor its log lines hold an original UID. For Orthanc, its change feed (pacs/orthanc.py) is the
faster way to find new instances and stays the default.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import logging

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from pacs.orthanc import PacsError

# Their DEBUG lines (and urllib3's) spell request URLs, which hold the PACS's UIDs; their warnings can too.
for name in ("dicomweb_client", "urllib3"):
    logging.getLogger(name).setLevel(logging.ERROR)

STUDY, SERIES, INSTANCE, MODALITY = "0020000D", "0020000E", "00080018", "00080060"
RADIOGRAPHS = ("CR", "DX")


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


class DicomWeb:
    def __init__(self, url: str, key: bytes, username: str = "", password: str = "", timeout: float = 60.0,
                 page: int = 100):
        session = requests.Session()
        if username:
            session.auth = (username, password)
        self.client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=timeout)
        self.url, self.key, self.page = url, key, page
        self.known: dict[str, tuple[str, str, str, str]] = {}  # keyed hash → (study, series, sop, modality)

    def _call(self, what: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (requests.RequestException, ValueError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            raise PacsError(f"the PACS's DICOMweb {what} failed ({f'HTTP {status}' if status else type(exc).__name__})") \
                from None

    def _key(self, study: str, series: str, sop: str) -> str:
        return hmac.new(self.key, f"{study}\x00{series}\x00{sop}".encode(), hashlib.sha256).hexdigest()[:40]

    def changes(self, since: int, limit: int = 100) -> dict:
        """Every CR/DX instance the PACS lists, in the shape of Orthanc's change feed: new ones are those the
        bridge has not recorded (their ``Seq`` counts on from ``since``); ``Done`` once the listing is read."""
        found = []
        for modality in RADIOGRAPHS:
            offset = 0
            while True:
                items = self._call("QIDO-RS search", self.client.search_for_instances,
                                   search_filters={"Modality": modality}, offset=offset, limit=self.page,
                                   fields=["Modality"]) or []
                for item in items:
                    uids = (_value(item, STUDY), _value(item, SERIES), _value(item, INSTANCE))
                    if all(uids):
                        key = self._key(*uids)
                        self.known[key] = (*uids, _value(item, MODALITY) or modality)
                        found.append(key)
                if len(items) < self.page:
                    break
                offset += len(items)
        changes = [{"ChangeType": "NewInstance", "ID": key, "Seq": since + i + 1} for i, key in enumerate(found)]
        return {"Changes": changes, "Done": True, "Last": since}

    def tags(self, instance_id: str) -> dict:
        if instance_id not in self.known:
            raise PacsError("the instance is no longer listed by the PACS (QIDO-RS)")
        return {"Modality": self.known[instance_id][3]}

    def file(self, instance_id: str) -> bytes:
        if instance_id not in self.known:
            raise PacsError("the instance is no longer listed by the PACS (QIDO-RS)")
        study, series, sop, _ = self.known[instance_id]
        dataset = self._call("WADO-RS retrieve", self.client.retrieve_instance, study, series, sop)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        return buffer.getvalue()

    def store(self, data: bytes) -> dict:
        """STOW-RS; storing the same SOP instance again changes nothing."""
        dataset = pydicom.dcmread(io.BytesIO(data))
        answer = self._call("STOW-RS store", self.client.store_instances, [dataset])
        if answer.get("FailedSOPSequence"):  # present, empty, when all went well (Orthanc)
            raise PacsError("the PACS refused an object the bridge stored (STOW-RS Failed SOP Sequence)")
        return {}

"""STOW-RS at /dicomweb/studies with real Postgres, Redis and a worker: CR/DX instances pushed with a token are
stored as the token's user's batch and analysed; the answer names them by their de-identified UIDs only;
anything else is refused with the standard's reason codes; no token, no entry."""
import io
import json
import uuid
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from tests.dicom_factory import IDENTIFYING_STRINGS, conformant_dx, grey_from_png, make_dicom
from tests.helpers import TokenClient, real_xray_bytes
from tests.web.test_api import wait_for_batch


def related(parts: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body as a STOW-RS client sends it (PS3.18 8.6.1.2)."""
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n" for part in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_rs_stores_radiographs_as_the_token_user_and_refuses_everything_else(pg_app, pg_client, bob_token):
    xray = grey_from_png(real_xray_bytes(1)[0][1])
    sent = [conformant_dx(xray), make_dicom(xray, "jpeg2000", modality="CR"),
            Path(get_testdata_file("CT_small.dcm")).read_bytes(), b"not dicom at all"]
    originals = [str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID) for data in sent[:3]]
    body, content_type = related(sent)
    answer = pg_client.post("/dicomweb/studies", data=body, content_type=content_type)
    assert answer.status_code == 202 and answer.mimetype == "application/dicom+json"
    text = answer.get_data(as_text=True)
    assert not [uid for uid in originals if uid in text] and not [s for s in IDENTIFYING_STRINGS if s in text]
    response = pydicom.Dataset.from_json(json.loads(text))
    stored, failed = response.ReferencedSOPSequence, response.FailedSOPSequence
    assert len(stored) == 2 and [item.FailureReason for item in failed] == [0x0122, 0xC000]
    assert failed[0].ReferencedSOPClassUID == pydicom.uid.CTImageStorage

    batch = wait_for_batch(pg_client, response.RetrieveURL.split("localhost", 1)[1])
    assert batch["name"] == "STOW-RS" and batch["counts"]["succeeded"] == 2
    for item in stored:
        image = pg_client.get(item.RetrieveURL.split("localhost", 1)[1])
        assert image.status_code == 200
        ds = pydicom.dcmread(io.BytesIO(image.data))
        assert ds.SOPInstanceUID == item.ReferencedSOPInstanceUID and ds.PatientIdentityRemoved == "YES"
    # Another user's token sees none of it.
    bob = TokenClient(pg_app.test_client(), bob_token)
    assert bob.get(f"/api/v1/batches/{batch['id']}").status_code == 404

    # Only objects that are no radiograph: 409, nothing stored; no token (or a session): 401; not multipart: 415.
    body, content_type = related(sent[2:])
    refused = pg_client.post("/dicomweb/studies", data=body, content_type=content_type)
    assert refused.status_code == 409 and "no instance was stored" in refused.get_json()["error"]["message"]
    anonymous = pg_app.test_client().post("/dicomweb/studies", data=body, content_type=content_type)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    forged = pg_app.test_client().post("/dicomweb/studies", data=body, content_type=content_type,
                                       headers={"Authorization": "Bearer xrt_not-a-token"})
    assert forged.status_code == 401
    wrong = pg_client.post("/dicomweb/studies", data=sent[0], content_type="application/dicom")
    assert wrong.status_code == 415 and "multipart/related" in wrong.get_json()["error"]["message"]
    empty = pg_client.post("/dicomweb/studies", data=b"", content_type='multipart/related; type="application/dicom"; '
                                                                         "boundary=x")
    assert empty.status_code == 400

"""The PACS bridge beside a real Orthanc (its own ports and storage), the real service (Postgres, Redis, a
worker) and real X-ray pixels: images stored in Orthanc are analysed and their SR (TID 1500, read back with
highdicom) and Parametric Map come back into the same study, with no original UID in the bridge's log; killed mid-run and restarted (two copies at once), every image is analysed exactly once."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import highdicom as hd
import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import create_engine, text

from shared.imaging import dicom_codes
from tests.dicom_factory import grey_from_png, make_dicom
from tests.conftest import TEST_SECRET_KEY
from tests.helpers import REPO, SHARED_DATA, api_token, free_port, real_xray_bytes, service_env, wait_until

pytestmark = [pytest.mark.skipif(shutil.which("Orthanc") is None,
                                 reason="Orthanc is not installed (Debian package orthanc; tests/run.sh installs it)"),
              pytest.mark.slow]  # starts Orthanc and bridge processes: not for the fast lane
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


class OrthancServer:
    """Orthanc on free loopback ports with a storage folder of its own."""

    def __init__(self, workdir):
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        storage = workdir / "orthanc-storage"
        storage.mkdir()
        config = {"Name": "xray-test-pacs", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
                  "HttpPort": self.http_port, "DicomPort": self.dicom_port, "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                  "Plugins": [DICOMWEB_PLUGIN] if os.path.exists(DICOMWEB_PLUGIN) else []}
        (workdir / "orthanc.json").write_text(json.dumps(config))
        self.log = open(workdir / "orthanc.log", "wb")
        self.process = subprocess.Popen(["Orthanc", str(workdir / "orthanc.json")], stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(base_url=self.url, timeout=30)
        wait_until(self._up, 30, message="Orthanc")

    def _up(self) -> bool:
        try:
            return self.http.get("/system").status_code == 200
        except httpx.TransportError:
            return False

    def store(self, data: bytes) -> str:
        answer = self.http.post("/instances", content=data, headers={"Content-Type": "application/dicom"})
        answer.raise_for_status()
        return answer.json()["ID"]

    def study_of(self, instance_id: str) -> list[pydicom.Dataset]:
        """Every instance of the instance's study, read back as DICOM."""
        study = self.http.get(f"/instances/{instance_id}/study").json()["ID"]
        return [pydicom.dcmread(io.BytesIO(self.http.get(f"/instances/{i['ID']}/file").content))
                for i in self.http.get(f"/studies/{study}/instances").json()]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


@pytest.fixture()
def orthanc(tmp_path):
    server = OrthancServer(tmp_path)
    yield server
    server.stop()


def _xrays(count: int):
    """Real NIH pixels: the 64-px committed fixtures, more from ../shared/data when it is there."""
    pngs = [data for _, data in real_xray_bytes(count)]
    folder = SHARED_DATA / "nih1000-64px" / "images"
    if len(pngs) < count and folder.is_dir():
        pngs += [p.read_bytes() for p in sorted(folder.glob("*.png"))[: count - len(pngs)]]
    return [grey_from_png(data) for data in pngs]


def _radiographs(count: int, offset: int = 0) -> list[bytes]:
    kinds = [("jpeg2000", 16, False, "DX"), ("rle", 8, True, "CR"), ("jpeg-ls", 16, False, "DX"),
             ("explicit", 16, True, "CR"), ("jpeg-baseline", 8, False, "DX")]
    out = []
    for i, pixels in enumerate(_xrays(offset + count)[offset:]):
        syntax, bits, m1, modality = kinds[(i + offset) % len(kinds)]
        out.append(make_dicom(pixels, syntax, bits=bits, monochrome1=m1, modality=modality))
    return out


class BridgeProcess:
    def __init__(self, env, log_path):
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "pacs.bridge"], cwd=REPO, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        self.log.close()


def _states(engine, source: str) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT state, count(*) FROM pacs_instances WHERE source = :s GROUP BY state"),
                                  {"s": source}).all()
    return dict(rows)


def test_the_bridge_analyses_each_pacs_image_once_and_stores_sr_and_heatmaps_in_its_study(orthanc, live_server, pg_url,
                                                                                         tmp_path):
    source = f"orthanc-{os.urandom(3).hex()}"
    user = f"pacs-{source[-6:]}"
    env = service_env(DATABASE_URL=pg_url, XRAY_PACS_URL=orthanc.url, XRAY_PACS_API_URL=live_server,
                      XRAY_PACS_TOKEN=api_token(pg_url, user), XRAY_PACS_SOURCE=source, XRAY_PACS_POLL_SECONDS="0.3")
    engine = create_engine(pg_url)
    first_wave = [orthanc.store(data) for data in _radiographs(4)]
    ct = orthanc.store(open(get_testdata_file("CT_small.dcm"), "rb").read())
    bridges = [BridgeProcess(env, tmp_path / "bridge-1.log")]
    try:
        # Killed (SIGKILL) once some results are back in the PACS and others are still on their way.
        wait_until(lambda: _states(engine, source).get("done", 0) >= 1, 120, message="a first result stored back")
        bridges[0].kill()
        states = _states(engine, source)
        # A kill right after an upload, before the bridge wrote down its job: made here for certain by
        # forgetting one recorded submission. Its retry must find the batch already made.
        with engine.begin() as connection:
            forgotten = connection.execute(text(
                "UPDATE pacs_instances SET state = 'new', job_id = NULL WHERE id = (SELECT id FROM pacs_instances "
                "WHERE source = :s AND state = 'done' LIMIT 1) RETURNING instance_id"), {"s": source}).scalar_one()
        # Images arrive while no bridge runs; then two copies start at once.
        second_wave = [orthanc.store(data) for data in _radiographs(3, offset=4)]
        bridges = [BridgeProcess(env, tmp_path / f"bridge-{n}.log") for n in (2, 3)]
        radiographs = first_wave + second_wave
        wait_until(lambda: _states(engine, source).get("done", 0) == len(radiographs), 240,
                   message=f"every radiograph done (states before the kill: {states})")
    finally:
        for bridge in bridges:
            bridge.stop()
    final_states = _states(engine, source)
    with engine.connect() as connection:
        jobs = connection.execute(text(
            "SELECT j.id, j.status FROM jobs j JOIN batches b ON b.id = j.batch_id JOIN users u ON u.id = b.owner_id "
            "WHERE u.username = :u"), {"u": user}).all()
        links = dict(connection.execute(text(
            "SELECT instance_id, job_id FROM pacs_instances WHERE source = :s AND state = 'done'"), {"s": source}).all())
        findings = {}
        for job_id, label, probability, positive in connection.execute(text(
                "SELECT job_id, label, probability, positive FROM findings WHERE job_id IN :ids").bindparams(
                    __import__("sqlalchemy").bindparam("ids", expanding=True)), {"ids": [j for j, _ in jobs]}):
            findings.setdefault(job_id, {})[label] = (probability, positive)
    engine.dispose()
    shown = sum(1 for job in findings.values() for label, (_, positive) in job.items() if positive and label != "No Finding")
    with_maps = sum(1 for job in findings.values() if any(p and label != "No Finding" for label, (_, p) in job.items()))
    # Everything the PACS announced was handled: the radiographs done; the CT and the bridge's own SRs and
    # Parametric Maps (announced by the PACS like any new instance) skipped. No captures: they are off by default.
    assert final_states == {"done": len(radiographs), "skipped": 1 + len(radiographs) + with_maps}
    # Exactly once: one job per radiograph (none for the CT), the forgotten one included.
    assert len(jobs) == len(radiographs) and all(status == "succeeded" for _, status in jobs)
    assert sorted(links) == sorted(radiographs) and len(set(links.values())) == len(radiographs)
    assert forgotten in links

    for instance in radiographs:
        study = orthanc.study_of(instance)
        original = next(ds for ds in study if ds.Modality in ("DX", "CR"))
        reports = [ds for ds in study if ds.Modality == "SR"]
        parametric = [ds for ds in study if ds.SOPClassUID == pydicom.uid.ParametricMapStorage]
        expected = findings[links[instance]]
        assert len(reports) == 1, f"{len(reports)} SRs in the study of {instance}"
        assert not [ds for ds in study if ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage]
        report = reports[0]
        assert report.PatientID == original.PatientID and report.StudyInstanceUID == original.StudyInstanceUID
        path = tmp_path / f"sr-{instance}.dcm"
        report.save_as(path)
        groups = hd.sr.srread(path).content.get_image_measurement_groups()
        read_back = {dicom_codes.label_of(g.finding_type): g.get_measurements()[0].value for g in groups}
        assert read_back == pytest.approx({label: p for label, (p, _) in expected.items()}, abs=1e-6)
        shown_here = [label for label, (_, positive) in expected.items() if positive and label != "No Finding"]
        assert len(parametric) == (1 if shown_here else 0)
        if shown_here:
            assert int(parametric[0].NumberOfFrames) == len(shown_here)
            assert parametric[0].StudyInstanceUID == original.StudyInstanceUID
    assert len(orthanc.study_of(ct)) == 1  # nothing was added to the CT's study
    # No original UID of the PACS's images in any line the bridges logged (highdicom's INFO lines named them).
    logged = b"".join((tmp_path / f"bridge-{n}.log").read_bytes() for n in (1, 2, 3))
    originals = {str(ds.SOPInstanceUID) for instance in radiographs for ds in orthanc.study_of(instance)
                 if ds.Modality in ("DX", "CR")}
    assert not [uid for uid in originals if uid.encode() in logged]
    print(f"PACS round trip: {len(radiographs)} radiographs + 1 CT sent to Orthanc; bridge killed with {states} "
          f"(one recorded submission then forgotten), two copies restarted; {len(jobs)} jobs, {len(radiographs)} SRs "
          f"and {with_maps} parametric maps ({shown} frames) back in their studies; {final_states['skipped']} "
          "instances skipped")


def test_the_bridge_speaks_dicomweb_qido_wado_stow_and_records_no_uid(orthanc, live_server, pg_url, caplog):
    """The same round trip through Orthanc's DICOMweb plugin, as with any DICOMweb PACS: QIDO-RS finds the CR/DX
    instances (the CT is never listed), WADO-RS fetches them, STOW-RS stores the SR and the map back. The
    bridge's table knows instances by a keyed hash, never by a UID, and no log line, at any level, names one.
    The bridge runs in this process here, so that every record it logs is seen (the kill test above runs it as
    processes)."""
    if not os.path.exists(DICOMWEB_PLUGIN):
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian package orthanc-dicomweb)")
    from pacs.bridge import bridge_from
    from shared.ops import metrics
    from shared.ops.config import load_settings

    source = f"dicomweb-{os.urandom(3).hex()}"
    settings = load_settings().replace(database_url=pg_url, pacs_dicomweb_url=f"{orthanc.url}/dicom-web", pacs_api_url=live_server,
                        pacs_token=api_token(pg_url, f"pacs-{source[-6:]}"), pacs_source=source,
                        secret_key=TEST_SECRET_KEY)
    engine = create_engine(pg_url)
    radiographs = [orthanc.store(data) for data in _radiographs(3)]
    ct = orthanc.store(open(get_testdata_file("CT_small.dcm"), "rb").read())
    originals = {str(ds.SOPInstanceUID) for instance in radiographs + [ct] for ds in orthanc.study_of(instance)}
    bridge = bridge_from(settings)
    caplog.set_level(logging.DEBUG)
    wait_until(lambda: bridge.round() is not None and _states(engine, source).get("done", 0) == len(radiographs),
               240, message="every radiograph done over DICOMweb")
    bridge.round()  # one more: what it stored back is never listed (QIDO asks for CR and DX only)
    assert _states(engine, source) == {"done": len(radiographs)}
    with engine.connect() as connection:
        recorded = connection.execute(text("SELECT instance_id FROM pacs_instances WHERE source = :s"),
                                      {"s": source}).scalars().all()
    engine.dispose()
    assert not [uid for uid in originals if any(uid in r for r in recorded)]
    for instance in radiographs:
        study = orthanc.study_of(instance)
        assert len([ds for ds in study if ds.Modality == "SR"]) == 1
        assert len([ds for ds in study if ds.SOPClassUID == pydicom.uid.ParametricMapStorage]) <= 1
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records and not [uid for uid in originals if uid in logged]
    assert metrics.PACS_INSTANCES.labels(source, "stored_back")._value.get() == len(radiographs)
    assert metrics.PACS_OLDEST_PENDING.labels(source)._value.get() == 0


def test_a_dicomweb_bridge_killed_mid_store_stores_each_report_and_map_once(orthanc, live_server, pg_url, tmp_path):
    """The kill test over DICOMweb (QIDO-RS, WADO-RS, STOW-RS): the bridge is SIGKILLed once a first result is
    back in the PACS, one recorded submission is forgotten (a kill between upload and bookkeeping), more images
    arrive, and two copies restart at once. Each radiograph gets one job, one SR and at most one map."""
    if not os.path.exists(DICOMWEB_PLUGIN):
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian package orthanc-dicomweb)")
    source = f"dicomweb-{os.urandom(3).hex()}"
    user = f"pacs-{source[-6:]}"
    env = service_env(DATABASE_URL=pg_url, XRAY_PACS_DICOMWEB_URL=f"{orthanc.url}/dicom-web",
                      XRAY_PACS_API_URL=live_server, XRAY_PACS_TOKEN=api_token(pg_url, user), XRAY_PACS_SOURCE=source,
                      XRAY_PACS_POLL_SECONDS="0.3", XRAY_SECRET_KEY=TEST_SECRET_KEY)
    engine = create_engine(pg_url)
    first_wave = [orthanc.store(data) for data in _radiographs(4)]
    bridges = [BridgeProcess(env, tmp_path / "bridge-1.log")]
    try:
        wait_until(lambda: _states(engine, source).get("done", 0) >= 1, 180, message="a first result stored back")
        bridges[0].kill()
        states = _states(engine, source)
        with engine.begin() as connection:
            connection.execute(text(
                "UPDATE pacs_instances SET state = 'new', job_id = NULL WHERE id = (SELECT id FROM pacs_instances "
                "WHERE source = :s AND state = 'done' LIMIT 1)"), {"s": source})
        second_wave = [orthanc.store(data) for data in _radiographs(3, offset=4)]
        bridges = [BridgeProcess(env, tmp_path / f"bridge-{n}.log") for n in (2, 3)]
        radiographs = first_wave + second_wave
        wait_until(lambda: _states(engine, source).get("done", 0) == len(radiographs), 300,
                   message=f"every radiograph done over DICOMweb (states before the kill: {states})")
    finally:
        for bridge in bridges:
            bridge.stop()
    with engine.connect() as connection:
        jobs = connection.execute(text(
            "SELECT j.id, j.status FROM jobs j JOIN batches b ON b.id = j.batch_id JOIN users u ON u.id = b.owner_id "
            "WHERE u.username = :u"), {"u": user}).all()
        linked = connection.execute(text("SELECT job_id FROM pacs_instances WHERE source = :s AND state = 'done'"),
                                    {"s": source}).scalars().all()
    final_states = _states(engine, source)
    engine.dispose()
    assert final_states == {"done": len(radiographs)}  # QIDO lists CR/DX only: nothing else to skip
    assert len(jobs) == len(radiographs) and all(status == "succeeded" for _, status in jobs)
    assert len(set(linked)) == len(radiographs)
    for instance in radiographs:
        study = orthanc.study_of(instance)
        assert len([ds for ds in study if ds.Modality == "SR"]) == 1, f"SRs in the study of {instance}"
        assert len([ds for ds in study if ds.SOPClassUID == pydicom.uid.ParametricMapStorage]) <= 1
    logged = b"".join((tmp_path / f"bridge-{n}.log").read_bytes() for n in (1, 2, 3))
    originals = {str(ds.SOPInstanceUID) for instance in radiographs for ds in orthanc.study_of(instance)}
    assert not [uid for uid in originals if uid.encode() in logged]

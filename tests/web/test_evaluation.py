"""Evaluation as a service on real services (Postgres, Redis, a Celery worker): a batch uploaded with its
NIH label file is evaluated by the worker when its last image finishes, with the figures `xray-model
evaluate` prints for the batch's CSV export; readers label images, their κ appears; reader roles read and
label but never delete; another user sees none of it; exported reader labels train a model."""
import csv
import io
import json

import pytest

from shared.model.labels import LABELS
from tests.helpers import SHARED_DATA, api_token, multipart, wait_until

FULLRES = SHARED_DATA / "nih-fullres-sample"
SMALL = SHARED_DATA / "nih1000-64px"
needs_data = pytest.mark.skipif(not FULLRES.is_dir() or not SMALL.is_dir(), reason="needs ../shared/data/nih")


def _labels_for(folder, names) -> bytes:
    """The rows of the folder's label file for these images (the file as NIH ships it, other rows dropped)."""
    text = (folder / "labels.csv").read_text()
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
    writer.writeheader()
    for row in reader:
        if row["Image Index"] in names:
            writer.writerow(row)
    return out.getvalue().encode()


def _distinct_patients(folder, count) -> list[str]:
    """The first images of the folder's label file that are each of a different patient."""
    seen, names = set(), []
    for row in csv.DictReader(io.StringIO((folder / "labels.csv").read_text())):
        if row["Patient ID"] not in seen and (folder / "images" / row["Image Index"]).is_file():
            seen.add(row["Patient ID"])
            names.append(row["Image Index"])
    return sorted(names[:count])


def _upload(client, files, labels: bytes | None = None):
    data = multipart(files)
    if labels is not None:
        data["labels"] = (io.BytesIO(labels), "labels.csv")
    answer = client.post("/api/v1/batches", data=data, content_type="multipart/form-data")
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return answer


def _finished(client, location, timeout=300):
    return wait_until(lambda: (b := client.get(location).get_json())["finished"] and b, timeout, message="the batch")


def _evaluation(client, batch_id, timeout=60, readers=False):
    def ready():
        body = client.get(f"/api/v1/batches/{batch_id}/evaluation").get_json()
        return body if body["state"] == "ready" and (body["readers"] if readers else body["versions"]) else None
    return wait_until(ready, timeout, message="the evaluation")


def _recovery_round(app):
    """One round of the recovery loop (xray-recovery), which evaluates batches whose labels changed after
    their last image finished."""
    from worker.recovery import recover_once

    services = app.extensions["xray"]
    return recover_once(services.db, services.celery, services.settings)


def _put(client, url, **kwargs):
    return client.open(url, method="PUT", **kwargs)


@pytest.mark.slow
@needs_data
def test_57_real_xrays_with_their_labels_are_evaluated_as_the_cli_scores_their_export(pg_client, tmp_path, capsys):
    from training.cli import main

    images = sorted((FULLRES / "images").glob("*.png"))
    answer = _upload(pg_client, [(p.name, p.read_bytes()) for p in images], (FULLRES / "labels.csv").read_bytes())
    assert answer.get_json()["labels"]["images_labelled"] == 57 and answer.get_json()["labels"]["unmatched_rows"] == 0
    batch = _finished(pg_client, answer.headers["Location"])
    assert batch["counts"]["succeeded"] == 57
    body = _evaluation(pg_client, batch["id"])
    [version] = body["versions"]
    service = version["figures"]

    exported = tmp_path / "batch.csv"
    exported.write_bytes(pg_client.get(batch["downloads"]["csv"]).get_data())
    main(["evaluate", "--predictions", str(exported), "--labels", str(FULLRES / "labels.csv"), "--min-positives", "5",
          "--json", str(tmp_path / "cli.json")])
    capsys.readouterr()
    cli = json.loads((tmp_path / "cli.json").read_text())

    with capsys.disabled():
        print("\n57 real X-rays, tiny model: finding | API AUROC (95% CI) | CLI AUROC (95% CI)")
        for label in LABELS:
            a, c = service["per_label"][label], cli["per_label"][label]
            fmt = lambda r: "too few" if r["auroc"] is None else f"{r['auroc']:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})"
            print(f"  {label:20s} | {fmt(a):24s} | {fmt(c)}")
        print(f"  mean AUROC           | {service['mean_auroc']:.3f} {service['mean_auroc_ci']} | "
              f"{cli['mean_auroc']:.3f} {cli['mean_auroc_ci']}")
    assert service["labels_too_few"] == cli["labels_too_few"] and service["labels_too_few"]
    assert service["labels_scored"] == cli["labels_scored"] and service["labels_scored"]
    assert service["mean_auroc"] == pytest.approx(cli["mean_auroc"], abs=1e-3)
    assert service["mean_auroc_ci"] == pytest.approx(cli["mean_auroc_ci"], abs=1e-3)
    for label in LABELS:
        a, c = service["per_label"][label], cli["per_label"][label]
        assert a["positives"] == c["positives"]
        if label in cli["labels_scored"]:
            assert a["status"] == "scored"
            for key in ("auroc", "ci_low", "ci_high"):
                assert a[key] == pytest.approx(c[key], abs=1e-3), (label, key)
        else:
            assert a["status"] == "too_few" and a["auroc"] is None
        if a["threshold"] == 0.5:  # the CLI scores a CSV at one threshold
            for key in ("sensitivity", "specificity"):  # NaN (no positives) is stored as null
                expected = None if c[key] != c[key] else pytest.approx(c[key], abs=1e-3)
                assert a[key]["value"] == expected, (label, key)
    # Subgroups from the label file: sex and view position, each with its interval and small groups marked.
    assert set(service["subgroups"]["sex"]) == {"F", "M"} and set(service["subgroups"]["view"]) == {"AP", "PA"}
    for groups in service["subgroups"].values():
        for figures in groups.values():
            assert figures["small"] == (figures["images"] < 30)
            assert sum(figures["images"] for figures in groups.values()) <= 57
    exported_csv = pg_client.get(f"/api/v1/batches/{batch['id']}/evaluation.csv").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(exported_csv)))) == len(LABELS)
    pdf = pg_client.get(f"/api/v1/batches/{batch['id']}/evaluation.pdf")
    assert pdf.status_code == 200 and pdf.get_data()[:4] == b"%PDF"


@needs_data
def test_readers_label_kappa_appears_roles_read_and_label_but_never_delete_and_strangers_see_nothing(
        pg_app, pg_url, alice_token, tmp_path):
    from tests.helpers import TokenClient

    alice = TokenClient(pg_app.test_client(), alice_token)
    reader = TokenClient(pg_app.test_client(), api_token(pg_url, "rita"))
    stranger = TokenClient(pg_app.test_client(), api_token(pg_url, "sam"))
    admin = TokenClient(pg_app.test_client(), api_token(pg_url, "ada", role="admin"))
    names = _distinct_patients(SMALL, 60)
    files = [(n, (SMALL / "images" / n).read_bytes()) for n in names]
    answer = _upload(alice, files)
    batch = _finished(alice, answer.headers["Location"])
    batch_id = batch["id"]
    assert alice.get(f"/api/v1/batches/{batch_id}/evaluation").get_json()["state"] == "no_labels"

    # Before the grant the reader is a stranger; only an admin grants.
    assert reader.get(f"/api/v1/batches/{batch_id}/evaluation").status_code == 404
    assert _put(alice, f"/api/v1/batches/{batch_id}/readers/rita").status_code == 403
    granted = _put(admin, f"/api/v1/batches/{batch_id}/readers/rita")
    assert granted.status_code == 200 and [r["username"] for r in granted.get_json()["readers"]] == ["rita"]

    truth = _labels_for(SMALL, set(names))
    report = _put(alice, f"/api/v1/batches/{batch_id}/labels", data=truth, content_type="text/csv").get_json()
    assert report["images_labelled"] == 60 and report["unmatched_images"] == 0
    rows = {r["Image Index"]: r["Finding Labels"].split("|") for r in csv.DictReader(io.StringIO(truth.decode()))}
    for number, job in enumerate(batch["jobs"][:10]):
        present = rows[job["filename"]]
        mine = {label: ("present" if label in present else "absent") for label in LABELS}
        theirs = dict(mine)
        if number % 3 == 0:  # the second reader disagrees on a few
            theirs["Effusion"] = "present" if mine["Effusion"] == "absent" else "absent"
        theirs["Mass"] = "unsure" if number == 1 else theirs["Mass"]
        assert _put(alice, f"/api/v1/jobs/{job['id']}/labels", json={"answers": mine}).status_code == 200
        said = _put(reader, f"/api/v1/jobs/{job['id']}/labels", json={"answers": theirs, "blind": True})
        assert said.status_code == 200 and said.get_json()["mine"] == theirs
        assert "truth" not in said.get_json()  # readers never see the truth file
    assert alice.get(f"/api/v1/batches/{batch_id}/evaluation").get_json()["state"] == "due"  # no web request computes
    # One round of the loop computes it (the shared stack may hold other due batches: at least this one).
    assert _recovery_round(pg_app)["evaluated"] >= 1
    assert alice.get(f"/api/v1/batches/{batch_id}/evaluation").get_json()["state"] == "ready"
    body = _evaluation(alice, batch_id, readers=True)
    readers = body["readers"]
    assert {r["reader"] for r in readers["readers"]} == {"alice", "rita"}
    [pair] = readers["between_readers"]
    assert pair["per_label"]["Effusion"]["images"] == 10 and pair["per_label"]["Effusion"]["kappa"] < 1
    assert pair["per_label"]["Mass"]["images"] == 9  # "unsure" is no answer
    alice_vs_truth = next(r for r in readers["against_truth"] if r["reader"] == "alice")
    assert alice_vs_truth["per_label"]["Effusion"]["agreement"] == 1.0
    assert reader.get(f"/api/v1/batches/{batch_id}/evaluation").get_json()["readers"] == readers

    # The reader reads and labels, but cannot change the truth file, grant, or delete anything.
    assert reader.get(f"/api/v1/jobs/{batch['jobs'][0]['id']}/image").status_code == 200
    assert _put(reader, f"/api/v1/batches/{batch_id}/labels", data=truth, content_type="text/csv").status_code == 404
    assert reader.delete(f"/api/v1/batches/{batch_id}").status_code == 404
    assert reader.delete(f"/api/v1/jobs/{batch['jobs'][0]['id']}").status_code == 404
    assert reader.delete(f"/api/v1/batches/{batch_id}/labels").status_code == 404
    # Another user sees none of it.
    for url in (f"/api/v1/batches/{batch_id}/evaluation", f"/api/v1/batches/{batch_id}/evaluation.csv",
                f"/api/v1/batches/{batch_id}/reader-labels.csv", f"/api/v1/jobs/{batch['jobs'][0]['id']}/labels"):
        assert stranger.get(url).status_code == 404, url
    assert _put(stranger, f"/api/v1/jobs/{batch['jobs'][0]['id']}/labels",
                json={"answers": {"Mass": "present"}}).status_code == 404
    # Bad answers are 400s, never 500s.
    job_url = f"/api/v1/jobs/{batch['jobs'][0]['id']}/labels"
    for bad in ({"answers": {"Mass": "maybe"}}, {"answers": {"Cancer": "present"}}, {"answers": {}}, [1], {"blind": 1}):
        assert _put(alice, job_url, json=bad).status_code == 400, bad

    # Every change is audited, with ids only.
    with pg_app.extensions["xray"].db.session() as session:
        from shared.auth import audit
        actions = [e.action for e in audit.events(session, limit=500) if e.target_id in {batch_id} | {
            j["id"] for j in batch["jobs"]}]
    assert {"reader_grant", "labels_attach", "label"} <= set(actions)

    # The reader's labels, exported NIH-style, train a tiny model: rita labels the other 50 images too.
    for job in batch["jobs"][10:]:
        said = {label: ("present" if label in rows[job["filename"]] else "absent") for label in LABELS}
        assert _put(reader, f"/api/v1/jobs/{job['id']}/labels", json={"answers": said, "blind": True}).status_code == 200
    # Revoked: a stranger again.
    assert admin.delete(f"/api/v1/batches/{batch_id}/readers/rita").status_code == 204
    assert reader.get(f"/api/v1/batches/{batch_id}/evaluation").status_code == 404

    exported = alice.get(f"/api/v1/batches/{batch_id}/reader-labels.csv?reader=rita").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 59 and all(r["Blind"] == "yes" for r in rows)  # the image left unsure on Mass is left out
    (tmp_path / "labels.csv").write_text(exported)
    images = tmp_path / "images"
    images.mkdir()
    for name, data in files:
        (images / name).write_bytes(data)
    from training.cli import main

    main(["train", "--images", str(images), "--labels", str(tmp_path / "labels.csv"), "--input-size", "32",
          "--width", "4", "--epochs", "1", "--patience", "1", "--no-augment", "--bootstrap", "20",
          "--out", str(tmp_path / "model")])
    assert (tmp_path / "model" / "manifest.json").is_file()


def test_a_bad_label_file_is_a_400_that_says_why(pg_client):
    from tests.helpers import real_xray_bytes

    files = real_xray_bytes(1)
    for text, said in ((b"name,labels\nx,y\n", "Image Index"), (b"Image Index,Finding Labels\na.png,Cancer\n", "Cancer"),
                       (b"Image Index,Finding Labels\na.png,\n", "empty"), (b"\xff\xfe\x00", "UTF-8"),
                       (b"Image Index,Finding Labels,Patient Age\na.png,Mass,old\n", "Patient Age")):
        data = multipart(files)
        data["labels"] = (io.BytesIO(text), "labels.csv")
        answer = pg_client.post("/api/v1/batches", data=data, content_type="multipart/form-data")
        assert answer.status_code == 400 and said in answer.get_json()["error"]["message"], answer.get_json()

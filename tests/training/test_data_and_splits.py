import gzip

import pytest

from shared.model.labels import LABELS
from tests.helpers import FIXTURES, SHARED_DATA
from training.data import DataError, Record, find_images, local_dataset, parse_finding_labels, read_label_table
from training.splits import label_counts, patient_split

HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def test_finding_labels_parse_no_finding_and_multi_label_rows():
    assert parse_finding_labels("No Finding") == {"No Finding"}
    assert parse_finding_labels("Effusion|Mass|Pleural_Thickening") == {"Effusion", "Mass", "Pleural_Thickening"}
    record = Record("x.png", "1", parse_finding_labels("Effusion|Mass"))
    target = record.target()
    assert target.sum() == 2 and target[LABELS.index("Effusion")] == 1 and target[LABELS.index("No Finding")] == 0
    with pytest.raises(DataError, match="unknown"):
        parse_finding_labels("Effusion|Covid")
    with pytest.raises(DataError, match="No Finding"):
        parse_finding_labels("No Finding|Mass")


def test_label_tables_read_plain_and_gzipped(tmp_path):
    text = HEADER + "a.png,Hernia|Mass,0,7,50,M,PA\nb.png,No Finding,1,7,51,M,PA\n"
    (tmp_path / "l.csv").write_text(text)
    with gzip.open(tmp_path / "l.csv.gz", "wt") as handle:
        handle.write(text)
    for name in ("l.csv", "l.csv.gz"):
        table = read_label_table(tmp_path / name)
        assert table["a.png"].labels == {"Hernia", "Mass"} and table["b.png"].patient_id == "7"
    (tmp_path / "bad.csv").write_text("Image,Labels\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_label_table(tmp_path / "bad.csv")


def test_images_are_found_recursively_like_the_full_nih_layout(tmp_path):
    for folder, name in (("images_001/images", "a.png"), ("images_002/images", "b.png")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / name).write_bytes((FIXTURES / "nih64" / "00000001_000.png").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    assert set(find_images(tmp_path)) == {"a.png", "b.png"}
    (tmp_path / "labels.csv").write_text(HEADER + "a.png,Mass,0,1,1,M,PA\nb.png,No Finding,0,2,1,F,PA\nc.png,Mass,0,3,1,F,PA\n")
    records = local_dataset(tmp_path, tmp_path / "labels.csv")
    assert [r.image_index for r in records] == ["a.png", "b.png"] and records[0].path.exists()


def _synthetic_records(patients=120):
    records = []
    for p in range(patients):
        for image in range(1 + p % 4):
            labels = {"No Finding"} if p % 3 else {LABELS[p % 14]}
            records.append(Record(f"{p:05d}_{image:03d}.png", str(p), frozenset(labels)))
    return records


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_puts_every_patient_in_exactly_one_split(seed):
    records = _synthetic_records()
    split = patient_split(records, seed=seed)
    patients = {name: {r.patient_id for r in rs} for name, rs in split.items()}
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]
    assert sum(len(rs) for rs in split.values()) == len(records)
    assert 0.5 < len(patients["train"]) / 120 < 0.85


def test_split_spreads_rare_labels_over_the_splits():
    split = patient_split(_synthetic_records(300), seed=0)
    for name in ("validation", "test"):
        counts = label_counts(split[name])
        assert sum(1 for label in LABELS[:14] if counts[label] > 0) >= 12, counts


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent (real NIH data)")
def test_real_nih_sample_split_has_no_patient_overlap():
    records = local_dataset(SHARED_DATA / "nih1000-64px" / "images", SHARED_DATA / "nih1000-64px" / "labels.csv")
    assert len(records) == 1000
    split = patient_split(records)
    seen = [{r.patient_id for r in rs} for rs in split.values()]
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 264

import uuid

import pytest

from shared.jobs.storage import LocalStorage, StorageError, overlay_key, upload_key


def test_generated_keys_round_trip(tmp_path):
    storage = LocalStorage(tmp_path)
    key = upload_key("png")
    storage.put(key, b"abc")
    assert storage.get(key) == b"abc" and storage.exists(key)
    job = uuid.uuid4()
    assert overlay_key(job, "Pleural_Thickening").endswith("/Pleural_Thickening.jpg")
    assert overlay_key(job, "No Finding").endswith("/No_Finding.jpg")
    assert not list(tmp_path.rglob(".tmp-*"))  # no temp files left behind


@pytest.mark.parametrize("key", ["../etc/passwd", "uploads/../../x", "/abs/path", "uploads/", "UP/x", "x"])
def test_keys_that_could_escape_the_root_are_refused(tmp_path, key):
    with pytest.raises(StorageError, match="invalid storage key"):
        LocalStorage(tmp_path).path(key)


def test_missing_and_unwritable_give_storage_errors(tmp_path):
    storage = LocalStorage(tmp_path)
    with pytest.raises(StorageError, match="missing"):
        storage.get("uploads/nothing.png")
    (tmp_path / "uploads").write_text("a file where a folder should be")
    with pytest.raises(StorageError, match="could not write"):
        storage.put("uploads/x.png", b"data")


def test_time_limits_must_nest_below_the_lease_and_visibility_timeout():
    from shared.ops.config import load_settings

    with pytest.raises(ValueError, match="SOFT_TIME_LIMIT"):
        load_settings(task_soft_time_limit=200, task_time_limit=180)
    with pytest.raises(ValueError, match="LEASE"):
        load_settings(task_time_limit=180, lease_seconds=100)
    settings = load_settings(task_soft_time_limit=50, task_time_limit=60)
    assert settings.task_soft_time_limit < settings.task_time_limit < settings.lease < settings.visibility_timeout

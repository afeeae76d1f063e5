"""Issue 13 item 6: no registry record can make custscore read or run a file outside the registry folder."""

from __future__ import annotations

import hashlib
import json
import shutil

import joblib
import pytest

from custscore.config import Settings
from custscore.errors import ArtifactIntegrityError
from custscore.models.registry import load_model, verify_model
from custscore.store import open_store
from custscore.store.schema import MODELS
from tests.models.test_registry import frame, ridge_pipeline, save  # noqa: F401 - the fixture is used

MARKER = []


class Evil:
    """Loading this pickle appends to MARKER: proof that code ran."""

    def __reduce__(self):
        return (MARKER.append, ("code ran",))


@pytest.fixture
def reg(tmp_path):
    settings = Settings.build(mongo_uri="memory:", home=tmp_path / "home", environ={})
    st = open_store(settings)
    yield st, settings
    st.close()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_version_that_walks_out_of_the_registry_is_refused_before_anything_loads(reg, frame, tmp_path):  # noqa: F811
    st, settings = reg
    save(st, settings, "satisfaction", ridge_pipeline(frame))
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    joblib.dump(Evil(), evil_dir / "pipeline.joblib")
    artifacts = {"pipeline.joblib": {"sha256": _sha(evil_dir / "pipeline.joblib"),
                                     "bytes": (evil_dir / "pipeline.joblib").stat().st_size, "format": "pickle"}}
    version = "../../../evil"
    manifest = {"task": "satisfaction", "version": version, "layout": "pickle", "artifacts": artifacts}
    (evil_dir / "manifest.json").write_text(json.dumps(manifest))
    st[MODELS].update_many({"task": "satisfaction"}, {"$set": {"aliases": []}})
    st[MODELS].insert_one({"_id": f"satisfaction:{version}", "task": "satisfaction", "version": version,
                           "aliases": ["production"], "manifest_sha256": _sha(evil_dir / "manifest.json"),
                           "artifacts": [{"file": k, **v} for k, v in artifacts.items()]})
    assert (settings.home / "models" / "satisfaction" / version).resolve() == evil_dir.resolve()
    for call in (load_model, verify_model):
        with pytest.raises(ArtifactIntegrityError, match="unsafe version"):
            call(st, settings, "satisfaction", "production")
    assert MARKER == []


def test_an_artifact_symlinked_out_of_its_folder_is_refused(reg, frame, tmp_path):  # noqa: F811
    st, settings = reg
    version = save(st, settings, "satisfaction", ridge_pipeline(frame))
    directory = settings.home / "models" / "satisfaction" / version
    outside = tmp_path / "outside.skops"
    shutil.copy(directory / "pipeline.skops", outside)  # same bytes: every hash still matches
    (directory / "pipeline.skops").unlink()
    (directory / "pipeline.skops").symlink_to(outside)
    with pytest.raises(ArtifactIntegrityError, match="resolves outside"):
        load_model(st, settings, "satisfaction")


def test_a_version_folder_symlinked_elsewhere_is_refused(reg, frame, tmp_path):  # noqa: F811
    st, settings = reg
    version = save(st, settings, "satisfaction", ridge_pipeline(frame))
    directory = settings.home / "models" / "satisfaction" / version
    moved = tmp_path / "moved"
    shutil.move(directory, moved)
    directory.symlink_to(moved, target_is_directory=True)
    with pytest.raises(ArtifactIntegrityError, match="outside"):
        load_model(st, settings, "satisfaction")

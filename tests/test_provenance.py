import pytest

from compact import provenance as P
from compact.errors import ArtifactError


def test_manifest_has_provenance():
    m = P.manifest({"a": 1}, kind="test")
    assert m["config"] == {"a": 1} and len(m["config_hash"]) == 12
    assert {"torch", "transformers", "python"} <= set(m["packages"])
    assert "cpu_count" in m["hardware"] and "commit" in m["git"]


def test_atomic_dir_keeps_old_artifact_on_failure(tmp_path):
    final = tmp_path / "art"
    with P.atomic_dir(final) as d:
        (d / "x.txt").write_text("good")
        P.write_json(d / P.MANIFEST, {"ok": True})
    with pytest.raises(RuntimeError):
        with P.atomic_dir(final, overwrite=True) as d:
            (d / "x.txt").write_text("half")
            raise RuntimeError("boom")
    assert (final / "x.txt").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["art"]  # no partial dirs left
    with pytest.raises(ArtifactError):
        with P.atomic_dir(final):
            pass

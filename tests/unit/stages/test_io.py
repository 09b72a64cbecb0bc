"""stages.io: outputs appear only when a stage succeeds; a broken database is named when it loads."""
from __future__ import annotations

import shutil

import pytest

from toolorch.core.errors import RunFailed
from toolorch.runtime.env import load_envs
from toolorch.stages.io import staged


def test_a_staged_folder_moves_into_place_only_on_success(tmp_path):
    out = tmp_path / "data" / "passk"
    with staged({"out_dir": out}) as paths:
        assert paths["out_dir"] == tmp_path / "data" / ".passk.partial"
        paths["out_dir"].mkdir(parents=True)
        (paths["out_dir"] / "tasks.jsonl").write_text("new\n")
        assert not out.exists()
    assert (out / "tasks.jsonl").read_text() == "new\n" and sorted(p.name for p in out.parent.iterdir()) == ["passk"]

    with pytest.raises(RuntimeError, match="killed"):
        with staged({"out_dir": out}) as paths:
            paths["out_dir"].mkdir()
            (paths["out_dir"] / "tasks.jsonl").write_text("half\n")
            raise RuntimeError("killed")
    assert (out / "tasks.jsonl").read_text() == "new\n"  # the old output stays whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["passk"]  # and no partial folder is left


def test_a_leftover_partial_folder_is_not_reused(tmp_path):
    (tmp_path / ".envs.partial").mkdir()
    (tmp_path / ".envs.partial" / "stale").write_text("x")
    with staged({"out_dir": tmp_path / "envs"}) as paths:
        paths["out_dir"].mkdir()
    assert list((tmp_path / "envs").iterdir()) == []


def test_environments_are_checked_when_they_load(tmp_path, library_env):
    good = tmp_path / "envs"
    shutil.copytree(library_env.db_path.parent, good / "minilib")
    assert list(load_envs(good, ["minilib"])) == ["minilib"]
    with pytest.raises(FileNotFoundError, match="no environment folder for atlantis"):
        load_envs(good, ["minilib", "atlantis"])
    with pytest.raises(FileNotFoundError, match="run synth-envs first"):
        load_envs(tmp_path / "nowhere", ["minilib"])
    db = good / "minilib" / "db.sqlite"
    db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2])  # truncated mid-file
    with pytest.raises(RunFailed, match=r"minilib/db.sqlite: (not a readable SQLite database|SQLite integrity)"):
        load_envs(good, ["minilib"])
    (good / "minilib" / "env.json").write_text('{"name": "minilib"}')
    with pytest.raises(RunFailed, match=r"minilib/env.json: description: Field required"):
        load_envs(good, ["minilib"])

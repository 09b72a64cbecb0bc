"""A checkpoint's identity (GRPO's input fingerprint, the deploy step's content hash) is its model,
not the run's curves, logs or training state: two runs that trained the same model publish the
same checkpoint."""
from __future__ import annotations

from pathlib import Path

from toolorch.stages.deploy import content_hash, file_digests
from toolorch.stages.grpo import input_fingerprint


def _checkpoint(root: Path, weights: bytes, run: str) -> Path:
    (root / "state" / "step-00000001").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 8}')
    (root / "model.safetensors").write_bytes(weights)
    (root / "state" / "step-00000001" / "meta.pkl").write_text(run)
    for records in ("tensorboard", "dvclive/plots/metrics", "curves"):
        (root / records).mkdir(parents=True, exist_ok=True)
    (root / "tensorboard" / f"events.out.tfevents.{run}").write_text(run)
    (root / "dvclive" / "plots" / "metrics" / "train_seconds.tsv").write_text(f"step\ttrain_seconds\n1\t{run}\n")
    (root / "curves" / "report.md").write_text(f"train_seconds {run}")
    return root


def test_runs_of_the_same_model_have_one_identity_and_other_weights_another(tmp_path):
    a = _checkpoint(tmp_path / "a", b"\x01" * 64, "1.25")
    b = _checkpoint(tmp_path / "b", b"\x01" * 64, "7.5")
    c = _checkpoint(tmp_path / "c", b"\x02" * 64, "1.25")
    assert input_fingerprint(a) == input_fingerprint(b) != input_fingerprint(c)
    assert content_hash(file_digests(a)) == content_hash(file_digests(b)) != content_hash(file_digests(c))
    assert set(file_digests(a)) == {"config.json", "model.safetensors"}

"""The README's results tables are the committed metrics' (scripts/readme_results.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "readme_results.py"


def _check(readme: Path, metrics: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--readme", str(readme), "--metrics-dir",
                           str(metrics)], capture_output=True, text=True)


def test_the_readme_shows_the_committed_metrics():
    done = _check(ROOT / "README.md", ROOT / "metrics")
    assert done.returncode == 0, done.stderr


def test_a_changed_number_is_caught_and_rewritten(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    grpo = json.loads((metrics / "grpo.json").read_text())
    grpo["heldout"]["grpo"]["reward"] += 0.25
    (metrics / "grpo.json").write_text(json.dumps(grpo))
    assert _check(readme, metrics).returncode == 1
    subprocess.run([sys.executable, str(SCRIPT), "--readme", str(readme), "--metrics-dir", str(metrics)], check=True)
    assert _check(readme, metrics).returncode == 0
    assert f"| {grpo['heldout']['grpo']['reward']:.3f} |" in readme.read_text()  # one sampling seed: no spread


def test_the_smol_block_follows_metrics_smol(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    ev = json.loads((metrics / "smol" / "eval.json").read_text())
    trained = ev["verdict"]["trained"]
    ev["policies"][trained]["accuracy"] = 0.9876
    (metrics / "smol" / "eval.json").write_text(json.dumps(ev))
    assert _check(readme, metrics).returncode == 1
    subprocess.run([sys.executable, str(SCRIPT), "--readme", str(readme), "--metrics-dir", str(metrics)], check=True)
    block = readme.read_text().split("<!-- smol results")[1].split("<!-- /smol results -->")[0]
    assert f"| {trained} | 0.988 [" in block and f"{trained} 0.988 at" in block

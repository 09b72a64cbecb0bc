"""Watching the training stages as operations would: the sft and grpo commands run as a pod runs
them (no terminal, stderr piped) and their log gives step, reward/loss, tokens/s, elapsed and ETA
lines; `dvc plots show` draws their dvclive curves into an offline HTML page holding the data;
`dvc metrics show` prints the headline table within 200 columns."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from unit.train.world import build_world

from toolorch.core.config import save_config
from toolorch.ops.dvc_yaml import plots
from toolorch.stages import STAGES, as_profile
from toolorch.stages.headline import write_headline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1}
LINE = re.compile(r"(sft|grpo) step (\d+)/(\d+) \(\d+%\) \| (.*) \| (\d+) tokens/s \S+ samples/s \| "
                  r"elapsed \d+:\d\d:\d\d ETA \d+:\d\d:\d\d$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, library_env):
    """sft then grpo through their commands, stderr piped as in a pod, a progress line every step."""
    root = tmp_path_factory.mktemp("watch")
    world = build_world(root / "world", library_env)
    stages = {"sft": {"tiny": TINY, "epochs": 2, "lr": 3e-3, "max_len": 2048, "rows_per_step": 2},
              "grpo": {"steps": 3, "tasks_per_step": 2, "group_size": 4, "max_new_tokens": 16,
                       "with_code": False, "heldout": {"enabled": False}}}
    profile = save_config(as_profile(world.cfg.model_copy(update={"stages": stages})), root, "profile.yaml")
    env = {**os.environ, "TOOLORCH_LOG_EVERY": "0", "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm"}
    common = ["--config", str(profile)]
    sft = _command(env, "sft", *common, "--trajectories-path", world.trajectories_path,
                   "--out-dir", root / "models/sft", "--metrics-path", root / "metrics/sft.json")
    grpo = _command(env, "grpo", *common, "--sft-dir", root / "models/sft", "--tasks-path", world.tasks_path,
                    "--envs-dir", world.envs_dir, "--heldout-path", root / "none.jsonl",
                    "--out-dir", root / "models/grpo", "--metrics-path", root / "metrics/grpo.json")
    return root, {"sft": sft, "grpo": grpo}


def _command(env: dict, stage: str, *args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", f"toolorch.stages.{stage}", *map(str, args)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("stage,shown", [("sft", "loss "), ("grpo", "reward/total ")])
def test_stage_log_reads_in_a_pod(runs, stage, shown):
    root, done = runs
    log = done[stage].stderr
    assert "\x1b[" not in log and "\n\n" not in log, "no terminal: no bar, no escape codes, no blank lines"
    lines = [LINE.search(line) for line in log.splitlines()]
    steps = [m for m in lines if m and m.group(1) == stage]
    total = int(steps[0].group(3))
    assert [int(m.group(2)) for m in steps] == list(range(1, total + 1)), log[-2000:]
    assert all(shown in m.group(4) for m in steps)
    assert steps[-1].group(0).endswith("ETA 0:00:00")
    assert int(steps[-1].group(5)) > 0  # tokens/s


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def repo(runs, tmp_path_factory):
    """A DVC repo with the generated plots declarations and the two runs' curves where dvc.yaml expects them."""
    root, _ = runs
    repo = tmp_path_factory.mktemp("dvcrepo")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    for stage in ("sft", "grpo"):
        shutil.copytree(root / "models" / stage / "dvclive", repo / "models" / stage / "dvclive")
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots(), "metrics": [
        next(iter(m)) for s in declared["stages"].values() for m in s["metrics"]]}))
    return repo


def test_dvc_plots_show_draws_sft_loss_and_grpo_reward(repo):
    _dvc(repo, "plots", "show", "-o", "plots", "--html-template", str(ROOT / "dvc_plots" / "template.html"))
    html = (repo / "plots" / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html  # renders offline
    for stage, key in (("sft", "loss"), ("grpo", "reward/total"), ("grpo", "reward/outcome")):
        tsv = repo / "models" / stage / "dvclive" / "plots" / "metrics" / f"{key}.tsv"
        rows = list(csv.DictReader(tsv.open(), delimiter="\t"))
        assert len(rows) >= 3
        column = key.rsplit("/", 1)[-1]
        for row in rows:  # every point is in the page's vega data
            assert re.search(rf'"{column}": ?"?{re.escape(row[column])}"?', html), (key, row)


def test_dvc_metrics_show_is_a_narrow_headline(runs, repo):
    root, _ = runs
    for stage in STAGES:
        full = root / "metrics" / f"{stage}.json" if stage in ("sft", "grpo") else ROOT / "metrics" / f"{stage}.json"
        write_headline(stage, json.loads(full.read_text()), repo / "metrics" / f"{stage}.json")
    table = _dvc(repo, "metrics", "show").splitlines()
    assert len(table) == 1 + len(STAGES)
    assert max(map(len, table)) <= 200, "\n".join(table)
    header = table[0].split()
    assert {"loss", "reward", "accuracy", "pass@1", "tok/s"} <= set(header) and len(header) <= 14

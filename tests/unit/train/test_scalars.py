"""Training scalars: means over rollout records, tool mix, and cost per kind of user."""
from __future__ import annotations

import subprocess

import pytest

from toolorch.runtime.rewards import TERMS
from toolorch.train.scalars import ScalarLog, rollout_scalars


def _record(user: str, cost: float, correct: bool, tools: list[str], malformed: bool = False) -> dict:
    terms = {k: 0.0 for k in TERMS} | {"outcome": float(correct), "total": float(correct)}
    return {"terms": terms, "correct": correct, "cost_usd": cost, "latency_s": 1.0, "turns": len(tools),
            "malformed": malformed, "tools": tools, "user": user}


def test_scalars_split_cost_by_user_and_share_tool_calls():
    out = rollout_scalars([
        _record("accuracy_first", 0.006, True, ["answer"]),
        _record("accuracy_first", 0.004, False, ["search", "answer"], malformed=True),
        _record("cost_averse+deny", 0.0003, True, ["answer"]),
    ])
    assert out["cost_usd_by_user/accuracy_first"] == pytest.approx(0.005)
    assert out["cost_usd_by_user/cost_averse+deny"] == pytest.approx(0.0003)
    assert out["tool_mix/answer"] == pytest.approx(0.75) and out["tool_mix/search"] == pytest.approx(0.25)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["reward/total"] == pytest.approx(2 / 3)
    assert out["malformed"] == pytest.approx(1 / 3)
    assert rollout_scalars([]) == {}


@pytest.mark.parametrize("commit", [False, True])
def test_curves_leave_a_git_checkout_alone(tmp_path, monkeypatch, commit):
    """In a git checkout (with or without commits, never `dvc init`ed) the curves are written and
    the checkout stays as it was: no .dvc folder, no dvc.yaml."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    if commit:
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                        "--allow-empty", "-m", "start"], check=True)
    monkeypatch.chdir(tmp_path)
    log = ScalarLog(tmp_path / "tb", curves=tmp_path / "curves")
    log.write(1, {"reward/total": 0.25})
    log.write(2, {"reward/total": 0.5, "tool_mix/search": 1.0})
    log.close()
    rows = (tmp_path / "curves" / "plots" / "metrics" / "reward" / "total.tsv").read_text().splitlines()
    assert rows[1:] == ["1\t0.25", "2\t0.5"]
    assert (tmp_path / "curves" / "plots" / "metrics" / "tool_mix" / "search.tsv").read_text().splitlines()[1:] == ["2\t1.0"]
    assert not (tmp_path / ".dvc").exists() and not (tmp_path / "dvc.yaml").exists()


def test_the_curves_report_charts_each_folder_and_states_the_last_values(tmp_path):
    from toolorch.train.curves import write_curves

    log = ScalarLog(tmp_path / "tb", curves=tmp_path / "live")
    for step in (1, 2, 3):
        log.write(step, {"reward/total": step / 10, "reward/outcome": step / 5, "kl": 0.01 * step, "lr": 0.001})
    log.close()
    report = write_curves(tmp_path / "live", tmp_path / "curves", "grpo").read_text()
    assert report.startswith("# grpo: training curves")
    assert report.index("## reward") < report.index("## Other scalars")  # the reward chart leads
    assert "![reward](reward.png)" in report and "![scalars](scalars.png)" in report
    assert "Last step: outcome 0.6, total 0.3." in report and "kl 0.03" in report
    assert {p.name for p in (tmp_path / "curves").glob("*.png")} == {"reward.png", "scalars.png"}
    empty = write_curves(tmp_path / "nothing", tmp_path / "none", "sft").read_text()
    assert "No scalars were logged" in empty

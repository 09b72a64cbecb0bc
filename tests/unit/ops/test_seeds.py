"""The pipeline at several pipeline seeds (toolorch.ops.seeds): paths, resume, and the per-seed table."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from toolorch.ops.seeds import app, seed_row, seeds_table

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["stages.synth_envs.domains=[library, bank]", "stages.synth_envs.rows_per_table=[50, 55]",
         "stages.synth_envs.tau2_domains=[]"]


def _run(root: Path, *extra: str):
    args = ["run", "--config", str(ROOT / "configs" / "tiny.yaml"), "--seeds", "3", "--seeds", "4",
            "--root", str(root), "--to", "synth_envs", *[a for s in SMALL for a in ("--set", s)], *extra]
    return CliRunner().invoke(app, args)


def test_each_seed_runs_under_its_own_folder_and_a_finished_stage_is_skipped(tmp_path):
    done = _run(tmp_path)
    assert done.exit_code == 0, done.output
    for seed in (3, 4):
        run = tmp_path / f"seed-{seed}"
        assert yaml.safe_load((run / "data/envs/config.resolved.yaml").read_text())["seed"] == seed
        assert json.loads((run / "metrics/synth_envs.json").read_text())["envs"] == 2
        assert (run / "metrics/headline/synth_envs.json").exists()
        assert not (run / "data/tasks").exists()  # --to synth_envs
    # the seed reaches the data: the two worlds differ
    a, b = (tmp_path / f"seed-{s}/data/envs/library/db.sqlite" for s in (3, 4))
    assert a.read_bytes() != b.read_bytes()
    stamp = (tmp_path / "seed-3/metrics/synth_envs.json").stat().st_mtime_ns
    assert _run(tmp_path).exit_code == 0
    assert (tmp_path / "seed-3/metrics/synth_envs.json").stat().st_mtime_ns == stamp  # resumed: skipped
    assert _run(tmp_path, "--from", "synth_envs").exit_code == 0
    assert (tmp_path / "seed-3/metrics/synth_envs.json").stat().st_mtime_ns != stamp  # --from re-ran it


def test_an_unknown_stage_is_a_usage_error(tmp_path):
    done = _run(tmp_path, "--from", "sfft")
    assert done.exit_code == 2 and "no stage 'sfft'" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "seed-3").exists()


def _committed() -> tuple[dict, dict]:
    return (json.loads((ROOT / "metrics/eval.json").read_text()),
            json.loads((ROOT / "metrics/grpo.json").read_text()))


def test_a_seed_row_reads_the_paired_margins_of_the_best_single_expert():
    ev, grpo = _committed()
    row = seed_row(7, ev, grpo)
    experts = {p: s["utility"] for p, s in ev["policies"].items() if p.startswith("only:")}
    best = max(experts, key=experts.get)
    assert row["best_single_expert"] == best
    assert row["grpo_minus_best_expert_utility"] == ev["paired"][best]["utility"]
    assert row["grpo_minus_sft_utility"] == ev["paired"]["sft"]["utility"]
    experts = [p for p in ev["policies"] if p.startswith("only:")]
    for_users = max(experts, key=lambda p: ev["policies"][p]["user_utility"])
    assert row["best_single_expert_for_users"] == for_users
    assert row["grpo_minus_best_expert_user_utility"] == ev["paired"][for_users]["user_utility"]
    by_category = row["grpo_minus_best_expert_user_utility_by_category"]
    assert by_category == {c: {"n": m["n"], **m["user_utility"]} for c, m in ev["paired"][for_users]["by_category"].items()}
    assert sum(m["n"] for m in by_category.values()) == row["n"]
    assert row["beats_every_expert_on_user_utility"] == all(ev["paired"][p]["user_utility"]["above_zero"] for p in experts)
    assert row["grpo_minus_sft_reward"] == grpo["heldout"]["reward_margin_paired"]
    assert row["grpo_minus_sft_reward_by_world"] == grpo["heldout"]["reward_margin_paired"]["by_world"]
    pref = grpo["heldout"]["preference"]
    assert row["preference_cost_ratio"] == pref["accuracy_first_cost_usd"] / pref["cost_averse_cost_usd"]
    assert row["malformed_share"] == {p: ev["policies"][p]["malformed_share"] for p in ("grpo", "sft")}
    assert row["router_bound_minus_best_expert_utility"] == ev["headroom"]["margin"]
    assert row["router_bound_minus_best_expert_user_utility"] == ev["headroom"]["user_utility"]["margin"]
    held = ev["headroom"]["user_utility"]["held_out_choice"]["margin"]
    assert row["held_out_router_minus_best_expert_user_utility"] == held
    sweep = {p["cost_weight"]: p["cost_usd"] for p in ev["pareto"] if p["policy"] == "grpo" and p["cost_weight"] is not None}
    assert row["sweep_cost_usd"] == {f"{w:g}": c for w, c in sorted(sweep.items())}
    costs = [c for _, c in sorted(sweep.items())]
    assert row["sweep_cost_falls"] == (costs[0] > costs[-1] and costs == sorted(costs, reverse=True))


def test_a_flat_or_rising_sweep_is_no_curve():
    ev, grpo = _committed()
    for costs, falls in (([0.003, 0.003, 0.003], False), ([0.002, 0.003, 0.001], False), ([0.004, 0.004, 0.001], True)):
        points = [p for p in ev["pareto"] if p["cost_weight"] is None]
        points += [{"policy": "grpo", "cost_weight": w, "cost_usd": c} for w, c in zip((0.0, 0.5, 1.0), costs)]
        assert seed_row(0, {**ev, "pareto": points}, grpo)["sweep_cost_falls"] is falls, costs


def _margin(mean: float, lo: float, hi: float) -> dict:
    return {"mean": mean, "ci95": [lo, hi], "above_zero": lo > 0, "below_zero": hi < 0}


def _row(seed: int, sft: dict, best: dict, ratio: float) -> dict:
    return {"seed": seed, "n": 150, "grpo_minus_sft_reward": sft, "grpo_minus_sft_utility": sft, "best_single_expert": "only:x",
            "grpo_minus_best_expert_utility": best, "best_single_expert_for_users": "only:x",
            "grpo_minus_best_expert_user_utility": best, "beats_every_expert_on_user_utility": best["above_zero"],
            "preference_cost_ratio": ratio, "heldout_reward_margin": 0.0,
            "router_bound_minus_best_expert_utility": None, "sweep_cost_falls": True}


def test_a_claim_holds_only_when_it_holds_at_every_seed():
    good = _margin(0.05, 0.01, 0.09)
    rows = [_row(0, good, good, 3.0), _row(1, good, good, 2.5), _row(2, good, good, 2.0)]
    table = seeds_table(rows)
    assert table["holds"] == {"grpo_beats_sft": True, "grpo_beats_best_expert": True,
                              "grpo_beats_every_expert_on_user_utility": True,
                              "preference_ratio_at_least_2x": True, "sweep_traces_a_curve": True}
    assert table["summary"]["preference_cost_ratio"] == {"mean": 2.5, "min": 2.0, "max": 3.0}
    assert "router_bound_minus_best_expert_utility" not in table["summary"]
    one_bad = copy.deepcopy(rows)
    one_bad[1]["grpo_minus_sft_reward"] = _margin(0.04, -0.01, 0.09)  # the mean is up; the interval holds zero
    one_bad[2]["preference_cost_ratio"] = 1.9
    one_bad[0]["sweep_cost_falls"] = False
    one_bad[0]["beats_every_expert_on_user_utility"] = False
    assert seeds_table(one_bad)["holds"] == {"grpo_beats_sft": False, "grpo_beats_best_expert": True,
                                             "grpo_beats_every_expert_on_user_utility": False,
                                             "preference_ratio_at_least_2x": False, "sweep_traces_a_curve": False}


def test_the_table_command_takes_seed0_from_the_repository_and_leaves_unfinished_seeds_out(tmp_path):
    ev, grpo = _committed()
    (tmp_path / "runs/seed-1/metrics").mkdir(parents=True)
    (tmp_path / "runs/seed-1/metrics/eval.json").write_text(json.dumps(ev))
    (tmp_path / "runs/seed-1/metrics/grpo.json").write_text(json.dumps(grpo))
    (tmp_path / "runs/seed-2/metrics").mkdir(parents=True)  # stopped before eval
    out = tmp_path / "seeds.json"
    done = CliRunner().invoke(app, ["table", "--root", str(tmp_path / "runs"), "--seed0", str(ROOT),
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    table = json.loads(out.read_text())
    assert table["seeds"] == [0, 1] and table["rows"][0] == table["rows"][1] | {"seed": 0}


def test_no_finished_seed_is_a_clear_error(tmp_path):
    done = CliRunner().invoke(app, ["table", "--root", str(tmp_path), "--out", str(tmp_path / "s.json")])
    assert done.exit_code == 2 and "no seed-<N>/ folder with the eval and grpo metrics" in done.output and "Traceback" not in done.output


def test_a_seed_run_gives_each_stage_the_switches_dvc_gives_it():
    """GRPO under `seeds run` starts over on a change of code or inputs, as under `dvc repro`."""
    from toolorch.ops.seeds import dvc_flags
    from toolorch.stages import declaration

    assert dvc_flags(declaration("grpo")) == {"restart_on_change": True}
    assert "--restart-on-change" in (ROOT / "dvc.yaml").read_text()
    assert dvc_flags(declaration("sft")) == {}

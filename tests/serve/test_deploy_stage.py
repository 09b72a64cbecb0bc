"""The deploy stage: publish under the content hash, gate on the eval verdict, roll the chart out on a
cluster (here a fake Kubernetes API on 127.0.0.1: no real API server exists on these machines) or
start the gateway locally, and smoke-test it against in-process eval."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fake_kube import FakeKube

from toolorch.core.config import Config
from toolorch.core.errors import RunFailed
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.eval.runner import EvalRow
from toolorch.serve.release import ReleaseError, kube_client, wait_ready
from toolorch.stages import as_profile
from toolorch.stages import deploy

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "eval"))
from eval_tasks import library_tasks  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "helm"


HALF_AND_HALF = {"accuracy": 0.5, "cost": 0.5, "latency": 0.0}


def row(policy: str, correct: bool, cost: float, block: str = "main", task: str = "t") -> EvalRow:
    return EvalRow(block=block, policy=policy, task_id=task, env="minilib", category="lookup", difficulty=1,
                   preference="p", user_weights=HALF_AND_HALF, correct=correct, stop_reason="answer", cost_usd=cost,
                   latency_s=1.0, turns=1)


def results(grpo_correct: list[bool]) -> list[EvalRow]:
    """grpo against two single experts: only:mini right half the time, cheap; only:frontier always, dear."""
    rows = [row("grpo", c, 0.001, task=f"t{i}") for i, c in enumerate(grpo_correct)]
    rows += [row("only:mini", i % 2 == 0, 0.0005, task=f"t{i}") for i in range(len(grpo_correct))]
    rows += [row("only:frontier", True, 0.004, task=f"t{i}") for i in range(len(grpo_correct))]
    return rows + [row("grpo", True, 0.0, block="pareto")]  # other blocks do not count


def test_the_gate_deploys_only_a_model_at_least_as_useful_as_the_best_single_expert():
    # user utility at these users' weights = 0.5 * correct - 0.5 * cost / 0.01: frontier 0.5 - 0.2 = 0.3,
    # mini 0.25 - 0.025 = 0.225
    wins = deploy.gate(results([True, True, True, True]), 0.5, 0.01, force=False)
    assert wins["deploy"] and not wins["forced"] and wins["best_expert"] == "only:frontier"
    assert wins["trained_utility"] == pytest.approx(0.45) and wins["best_expert_utility"] == pytest.approx(0.3)
    loses = deploy.gate(results([True, False, False, False]), 0.5, 0.01, force=False)
    assert not loses["deploy"] and "loses to only:frontier" in loses["reason"]
    forced = deploy.gate(results([True, False, False, False]), 0.5, 0.01, force=True)
    assert forced["deploy"] and forced["forced"] and forced["reason"].startswith("forced (force_deploy): grpo user utility")
    # the users' own trade-off decides, not a fixed rate: for accuracy-first users the always-right
    # frontier model beats a policy right three times in four, however cheap
    accuracy_first = [r.model_copy(update={"user_weights": {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}})
                      for r in results([True, True, True, False])]
    assert deploy.gate(results([True, True, True, False]), 0.5, 0.01, force=False)["deploy"]
    assert not deploy.gate(accuracy_first, 0.5, 0.01, force=False)["deploy"]
    unchecked = deploy.gate([r for r in results([True]) if not r.policy.startswith("only:")], 0.5, 0.01, force=False)
    assert not unchecked["deploy"] and "compared no single expert" in unchecked["reason"]
    unscored = deploy.gate([row("only:mini", True, 0.0)], 0.5, 0.01, force=False)
    assert not unscored["deploy"] and "did not score 'grpo'" in unscored["reason"]


def fake_checkpoint(folder: Path, weights: bytes = b"w1") -> Path:
    (folder / "state").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "state" / "optimizer.pt").write_bytes(b"resume only")
    return folder


def test_publishing_is_content_addressed_and_never_overwrites(tmp_path):
    model = fake_checkpoint(tmp_path / "grpo")
    first = deploy.publish(model, str(tmp_path / "store"))
    dest = Path(first["uri"])
    assert dest.parent == tmp_path / "store" and dest.name == f"grpo-{first['sha256']}" and len(first["sha256"]) == 64
    assert sorted(p.name for p in dest.iterdir()) == ["checkpoint.sha256.json", "config.json", "model.safetensors"]
    assert deploy.publish(model, str(tmp_path / "store")) == first  # the same content: the same path, kept
    (model / "model.safetensors").write_bytes(b"w2")
    second = deploy.publish(model, str(tmp_path / "store"))
    assert second["sha256"] != first["sha256"] and (dest / "model.safetensors").read_bytes() == b"w1"
    (Path(second["uri"]) / "checkpoint.sha256.json").write_text("{}")  # someone edited a published version
    with pytest.raises(RunFailed, match="already published with other contents"):
        deploy.publish(model, str(tmp_path / "store"))


def test_the_chart_is_applied_and_waited_for_on_a_cluster():
    uri = "s3://toolorch-artifacts/models/grpo-" + "ab" * 32
    with FakeKube(polls_until_ready=3, fail_first=1) as kube:
        settings = deploy.DeploySettings(chart_dir=str(CHART), kube_host=kube.url, ready_timeout_s=30,
                                         gateway_url="http://gateway.test/v1")
        url, ready = deploy.roll_out(settings, uri)
    assert url == "http://gateway.test/v1"
    paths = [a["path"] for a in kube.applies]
    assert "/apis/apps/v1/namespaces/toolorch/deployments/orchestrator-toolorch-gateway" in paths
    assert "/api/v1/namespaces/toolorch/services/orchestrator-toolorch-gateway" in paths
    assert all(a["content_type"] == "application/apply-patch+yaml" and a["query"]["fieldManager"] == ["toolorch-deploy"]
               for a in kube.applies)
    assert not any("/pods/" in p for p in paths)  # the helm test hook is not part of the release
    deployments = [p for p in paths if "/deployments/" in p]
    assert sorted(ready) == sorted(p.rsplit("/", 1)[-1] for p in deployments)
    assert all(kube.gets[p] == 3 for p in deployments)  # polled until each reported itself rolled out
    engine = kube.objects["/apis/apps/v1/namespaces/toolorch/deployments/orchestrator-toolorch-engine"]
    assert uri in json.dumps(engine)  # the engine pulls the published checkpoint


def test_a_release_that_never_becomes_ready_fails_within_its_bound():
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "engine"}, "spec": {"replicas": 2}}
    with FakeKube(stuck=("engine",)) as kube:
        api = kube_client(kube.url)
        from toolorch.serve.release import apply_objects

        applied = apply_objects(api, [doc], "toolorch")
        with pytest.raises(ReleaseError, match=r"not ready after 0.3 s: deployment\(s\) engine"):
            wait_ready(api, applied, "toolorch", timeout_s=0.3, poll_s=0.05)
    with FakeKube() as kube:  # a refused object names its path and the server's answer
        with pytest.raises(ReleaseError, match="PATCH /apis/apps/v1/namespaces/toolorch/deployments/other: .* 400"):
            from toolorch.serve.release import call

            call(kube_client(kube.url), "PATCH", "/apis/apps/v1/namespaces/toolorch/deployments/other", body=doc,
                 content_type="application/apply-patch+yaml")


def stage_world(tmp_path: Path, library_env, eval_rows: list[EvalRow]) -> dict[str, Path]:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "minilib").symlink_to(library_env.db_path.parent, target_is_directory=True)
    write_jsonl(tmp_path / "tasks" / "heldout.jsonl", library_tasks())
    write_jsonl(tmp_path / "eval" / "results.jsonl", eval_rows)
    return {"eval_dir": tmp_path / "eval", "tasks_path": tmp_path / "tasks" / "heldout.jsonl", "envs_dir": envs,
            "out_dir": tmp_path / "out", "metrics_path": tmp_path / "deploy.json"}


def stage_config(sim_config: Config, tmp_path: Path, **settings) -> Config:
    stages = {"eval": {"max_new_tokens": 24}, "deploy": {"model_store": str(tmp_path / "store"), "target": "local",
                                                         "smoke_tasks": 3, **settings}}
    return as_profile(sim_config.model_copy(update={"stages": stages}))


def test_a_refused_deploy_is_a_verdict_not_a_failure(tmp_path, library_env, sim_config):
    paths = stage_world(tmp_path, library_env, results([False, False, False, False]))
    model = fake_checkpoint(tmp_path / "grpo")
    metrics = deploy.run(stage_config(sim_config, tmp_path), model, **paths)
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["deployed"] is False and metrics["deployed"] is False and metrics["target"] is None
    assert "loses to only:frontier" in verdict["verdict"]["reason"]
    assert Path(verdict["published"]["uri"]).is_dir() and verdict["published"]["uri"].startswith(str(tmp_path))  # published all the same: the record of what was refused
    assert not (tmp_path / "out" / "smoke.jsonl").exists()
    assert deploy.summary(metrics).startswith("not deployed: grpo user utility")


@pytest.mark.slow
def test_a_forced_local_deploy_serves_the_checkpoint_and_scores_like_in_process_eval(tmp_path, library_env,
                                                                                      sim_config, trained_tiny_dir):
    paths = stage_world(tmp_path, library_env, results([False, False, False, False]))
    metrics = deploy.run(stage_config(sim_config, tmp_path, force_deploy=True), trained_tiny_dir, **paths)
    assert metrics["deployed"] and metrics["target"] == "local" and metrics["verdict"]["forced"]
    smoke = read_jsonl(tmp_path / "out" / "smoke.jsonl", EvalRow)
    by = {p: [r.model_dump(exclude={"policy"}) for r in smoke if r.policy == p] for p in ("in_process", "gateway")}
    assert len(by["gateway"]) == 3 and by["gateway"] == by["in_process"]
    assert metrics["smoke"]["equal_to_in_process"] and metrics["smoke"]["tasks"] == 3
    assert sum(r["turns"] for r in by["gateway"]) > 3  # the served orchestrator called tools

"""Eval through the gateway: a held-out task in the request body is run by the gateway as in-process
eval runs it, so the deployed service is scored exactly like the checkpoint it serves; the request's
temperature and seed set the orchestrator's sampling."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from gateway_process import gateway_process
from gateway_server import GatewayServer

from toolorch.core.config import Config, save_config
from toolorch.core.jsonl import read_jsonl, write_jsonl
from toolorch.core.records import Task, Trajectory
from toolorch.eval.gateway import GatewayEpisodes
from toolorch.eval.lineup import Lineup, expand
from toolorch.eval.runner import EvalRow
from toolorch.runtime.episode import Runtime
from toolorch.runtime.policies import HFPolicy
from toolorch.serve.catalog_file import from_profile
from toolorch.serve.gateway import Settings
from toolorch.stages import as_profile
from toolorch.stages import eval as eval_stage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "eval"))
from eval_tasks import library_tasks  # noqa: E402  the held-out tasks of the eval tests


def envs_folder(tmp_path: Path, library_env) -> Path:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "minilib").symlink_to(library_env.db_path.parent, target_is_directory=True)
    return envs


def eval_profile(sim_config: Config, **settings) -> Config:
    stage = {"bootstrap_samples": 50, "aux_max_tasks": 3, "cost_weights": [0.0, 1.0], **settings}
    return as_profile(sim_config.model_copy(update={"stages": {"eval": stage}}))


def numbers(stats: dict) -> dict:  # ci95 is bootstrapped with a seed drawn from the policy's name
    return {k: v for k, v in stats.items() if k != "ci95"}


@pytest.mark.slow
def test_eval_through_the_gateway_equals_in_process_eval(tmp_path, library_env, sim_config, trained_tiny_dir):
    """`toolorch serve --config P --orchestrator hf:CKPT --envs-dir ENVS` as a process; the eval stage runs
    the same checkpoint in process and through `gateway:` on the same held-out tasks and seed."""
    envs = envs_folder(tmp_path, library_env)
    tasks = tmp_path / "tasks" / "heldout.jsonl"
    write_jsonl(tasks, library_tasks())
    local = f"hf:{trained_tiny_dir}"
    profile = save_config(eval_profile(sim_config), tmp_path, "profile.yaml")
    args = ["--config", str(profile), "--orchestrator", local, "--envs-dir", str(envs)]
    with gateway_process(args, tmp_path / "gateway.log") as url:
        gateway = f"gateway:{url}"
        cfg = eval_profile(sim_config, policies=[local, gateway, "cascade"], sweep_policies=[local, gateway])
        metrics = eval_stage.run(cfg, tasks, envs, tmp_path / "models", tmp_path / "out", tmp_path / "eval.json")
        served = httpx2.get(url.removesuffix("/v1") + "/metrics").text
    rows = read_jsonl(tmp_path / "out" / "results.jsonl", EvalRow)
    by_policy = {name: [r.model_dump(exclude={"policy"}) for r in rows
                        if r.policy == name and r.block in ("main", "pareto")] for name in ("model", "gateway:toolorch")}
    assert len(by_policy["model"]) == 8 + 2 * 3  # main, pareto (two weights)
    assert by_policy["gateway:toolorch"] == by_policy["model"]
    assert sum(r["turns"] for r in by_policy["model"]) > len(by_policy["model"])  # tools were called
    assert {r["stop_reason"] for r in by_policy["model"]} >= {"answer"}
    assert numbers(metrics["policies"]["gateway:toolorch"]) == numbers(metrics["policies"]["model"])
    points = {name: [{k: v for k, v in p.items() if k not in ("label", "policy")} for p in metrics["pareto"]
                     if p["policy"] == name] for name in ("model", "gateway:toolorch")}
    assert points["gateway:toolorch"] == points["model"] and len(points["model"]) == 3  # main + two weights
    # a gateway serves one catalog: the shifted blocks ran in process only, and the report says why
    shifted = metrics["generalisation"]["unseen_tool"]["policies"]
    assert "model" in shifted and "gateway:toolorch" not in shifted
    assert any(n.startswith("gateway:toolorch: a gateway serves one catalog") for n in metrics["notes"])
    # every episode went through the gateway's own request path: 14 held-out requests counted
    counted = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(served) for s in family.samples}
    assert counted[("toolorch_requests_total", (("code", "ok"), ("orchestrator", "default"), ("status", "200")))] == 14


def test_expected_failures_are_openai_shaped_400s_naming_the_field(tmp_path, library_env, sim_config):
    task = library_tasks()[0].model_dump(mode="json")
    ask = {"model": "toolorch", "messages": [{"role": "user", "content": task["question"]}]}
    plain = Settings(served=from_profile(sim_config), orchestrators=[("default", "only:frontier")])
    with GatewayServer(plain) as gw:
        no_envs = httpx2.post(gw.url + "/chat/completions", json={**ask, "task": task}, timeout=30)
    with_envs = Settings(served=from_profile(sim_config), orchestrators=[("default", "only:frontier")],
                         envs_dir=envs_folder(tmp_path, library_env))
    with GatewayServer(with_envs) as gw:
        def post(**body):
            return httpx2.post(gw.url + "/chat/completions", json={**ask, **body}, timeout=30)

        cases = {"task": no_envs,
                 "task.env": post(task={**task, "env": "../minilib"}),
                 "task.answer": post(task={k: v for k, v in task.items() if k != "answer"}),
                 "messages": post(task=task, messages=[{"role": "user", "content": "another question"}]),
                 "preference": post(task=task, preference="cost_averse")}
        ok = post(task=task)
    for param, resp in cases.items():
        assert resp.status_code == 400, (param, resp.text)
        error = resp.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error", error
        assert param in error["message"] and isinstance(error["code"], str)
    assert ok.status_code == 200, ok.text
    traj = Trajectory.model_validate(ok.json()["toolorch"]["trajectory"])
    # only:frontier asks the simulated frontier expert, which in eval knows the gold answer (accuracy 1.0)
    assert traj.task_id == task["id"] and traj.correct and ok.json()["toolorch"]["options"]["task"] == task["id"]


def test_request_temperature_and_seed_set_the_orchestrators_sampling(tmp_path, library_env, sim_config,
                                                                     trained_tiny_dir):
    """An hf: orchestrator samples turn k of a request with (seed + k, temperature), as the in-process
    HFPolicy does; the seed changes what is sampled, the same seed gives the same episode."""
    cfg = sim_config
    task = library_tasks()[0]
    settings = Settings(served=from_profile(cfg), orchestrators=[("default", f"hf:{trained_tiny_dir}")],
                        envs_dir=envs_folder(tmp_path, library_env))
    limits = cfg.episode.limits()
    with GatewayServer(settings) as gw:
        def episode(seed: int, temperature: float, turn_tokens: int = 24) -> dict:
            resp = httpx2.post(gw.url + "/chat/completions", timeout=120, json={
                "model": "toolorch", "messages": [{"role": "user", "content": task.question}],
                "task": task.model_dump(mode="json"), "seed": seed, "temperature": temperature,
                "max_turn_tokens": turn_tokens})
            assert resp.status_code == 200, resp.text
            return resp.json()["toolorch"]["trajectory"]

        sampled = {seed: episode(seed, 1.5) for seed in (1, 2, 3)}
        again = episode(1, 1.5)
        too_many = httpx2.post(gw.url + "/chat/completions", timeout=30, json={
            "model": "toolorch", "messages": [{"role": "user", "content": "hi"}], "max_turn_tokens": 100_000})
    assert again == sampled[1]
    assert len({json.dumps(t["messages"]) for t in sampled.values()}) > 1  # the seed reached the sampler
    policy = HFPolicy(trained_tiny_dir, max_new_tokens=24, temperature=1.5, seed=1)
    with library_env.session() as session:
        # the eval's experts: one draw per held-out task, as the gateway grades it
        runtime = Runtime.of(cfg.catalog(), limits, cfg.seed).one_draw_per_task()
        in_process = runtime.run(task, policy, runtime.toolbox(session))
    assert in_process.model_dump(mode="json", exclude={"policy"}) == \
        Trajectory.model_validate(sampled[1]).model_dump(mode="json", exclude={"policy"})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_turn_tokens"


def test_a_gateway_policy_runs_only_under_the_catalog_it_first_met(tmp_path, sim_config):
    cfg = eval_profile(sim_config)
    shifted = cfg.model_copy(update={"experts": cfg.experts[:1]})
    spec = expand(["gateway:http://127.0.0.1:9/v1#default"], cfg.catalog())[0]
    lineup = Lineup(tmp_path, tmp_path, seed=0, max_new_tokens=8, random_max_calls=1, only_expert_search=False,
                    prompted_base=None)
    assert lineup.policy_name(spec) == "gateway:default"
    make = lineup.maker(spec, cfg.catalog(), [], {})
    assert make is not None and isinstance(make(Task(id="t", env="e", question="q", answer="a"), None),
                                           GatewayEpisodes)
    assert lineup.maker(spec, shifted.catalog(), [], {}) is None
    assert lineup.maker(spec, cfg.catalog(), [], {}) is not None
    assert lineup.notes == ["gateway:default: a gateway serves one catalog; not run under a shifted one"]
    with pytest.raises(ValueError, match="gateway:<http"):
        expand(["gateway:127.0.0.1:8000"], cfg.catalog())

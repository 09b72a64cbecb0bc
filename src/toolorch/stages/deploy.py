"""toolorch deploy --config configs/tiny.yaml

The pipeline's last step: publish the GRPO checkpoint, gate on the eval verdict, deploy it, and
smoke-test the deployment through the gateway.

    python -m toolorch.stages.deploy --config configs/tiny.yaml                     # the dvc stage
    toolorch deploy --config configs/tiny.yaml --set stages.deploy.force_deploy=true

1. Publish: the checkpoint is copied to `<model_store>/grpo-<sha256 of its files>`, an immutable
   path: an existing one is checked against its manifest, never overwritten. On a cluster the store
   is a claim mounted into the step; `model_store_uri` names it for the chart (pvc://CLAIM/PATH).
2. Gate: from eval's results (main block), the trained policy's mean user utility (each task at
   its own user's trade-off, the product's promise) against the best single expert's
   (`only:<expert>`). A model that loses, or that eval did not compare with any single expert, is
   not deployed unless `force_deploy`; a refused deploy is a verdict (`deployed: false` and why,
   in verdict.json and the metrics), not a failed run.
3. Deploy: on a cluster (`target: cluster`, or `auto` inside a pod) the chart is rendered with
   the published URI and applied, and its Deployments waited for (toolorch.serve.release); outside
   one, `toolorch serve` starts locally on the checkpoint (toolorch.serve.process).
4. Smoke: a sample of held-out tasks goes through the gateway (`gateway:` policy) and through the
   checkpoint in process; the rows must be equal, or the run fails.

Writes verdict.json and smoke.jsonl (both policies' rows) in `--out-dir`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from toolorch.core.config import Config, save_config
from toolorch.core.errors import RunFailed
from toolorch.core.splits import stratified_subsample
from toolorch.eval.heldout import heldout_sample
from toolorch.eval.lineup import Lineup
from toolorch.eval.metrics import metric_arrays
from toolorch.eval.runner import Block, EvalRow, run_policy
from toolorch.runtime.env import load_envs
from toolorch.serve.process import local_gateway
from toolorch.core.jsonl import read_jsonl, write_json, write_jsonl
from toolorch.stages.io import finish, model_files
from toolorch.stages.stage import Input, Stage

MANIFEST = "checkpoint.sha256.json"
TRAINED = "grpo"


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_store: str = "models/store"  # a folder (on a cluster: a claim mounted into the deploy step)
    model_store_uri: Optional[str] = None  # how the chart names that folder, e.g. pvc://toolorch-models/store
    force_deploy: bool = False  # deploy even a model that loses to the best single expert on user utility
    target: Literal["auto", "local", "cluster"] = "auto"  # auto: cluster inside a pod, else local
    smoke_tasks: int = Field(3, ge=1)
    start_timeout_s: float = Field(180.0, gt=0)  # the local gateway loading the checkpoint
    # cluster
    chart_dir: str = "helm"
    values_file: Optional[str] = None  # e.g. helm/values-gpu.yaml
    release: str = "orchestrator"
    namespace: str = "toolorch"
    ready_timeout_s: float = Field(900.0, gt=0)
    gateway_url: Optional[str] = None  # None: http://<release>-toolorch-gateway.<namespace>:8080/v1
    kube_host: Optional[str] = None  # None: the pod's service account, else kubeconfig


def file_digests(model_dir: Path) -> dict[str, str]:
    """sha256 of every file a server loads, by relative path (not the training state, curves or logs)."""
    out = {}
    for path in model_files(model_dir):
        rel = path.relative_to(model_dir).as_posix()
        if rel != MANIFEST:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def content_hash(digests: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def publish(model_dir: Path, store: str, store_uri: str | None = None) -> dict[str, str]:
    """Copy the checkpoint to `<store>/grpo-<hash>` unless there already (then its manifest must match);
    `uri` names it as the chart reads it (`<store_uri>/grpo-<hash>`, e.g. on the claim the store is)."""
    digests = file_digests(model_dir)
    digest = content_hash(digests)
    name = f"{TRAINED}-{digest}"
    dest = Path(store) / name
    if dest.exists():
        if json.loads((dest / MANIFEST).read_text()) != digests:
            raise RunFailed(f"{dest}: already published with other contents (its manifest differs): not overwritten")
        return {"uri": f"{(store_uri or store).rstrip('/')}/{name}", "sha256": digest}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    for rel in digests:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_dir / rel, tmp / rel)
    write_json(tmp / MANIFEST, digests)
    os.replace(tmp, dest)  # whole or not at all
    return {"uri": f"{(store_uri or store).rstrip('/')}/{name}", "sha256": digest}


def gate(rows: list[EvalRow], utility_a: float, cost_unit_usd: float, force: bool) -> dict[str, Any]:
    """Deploy or not, and why, from eval's main-block rows."""
    main: dict[str, list[EvalRow]] = {}
    for r in rows:
        if r.block == "main":
            main.setdefault(r.policy, []).append(r)
    utility = {p: float(metric_arrays(rs, utility_a, cost_unit_usd)["user_utility"].mean()) for p, rs in main.items()}
    experts = {p: u for p, u in utility.items() if p.startswith("only:")}
    out: dict[str, Any] = {"metric": "user_utility", "trained": TRAINED, "trained_utility": utility.get(TRAINED),
                           "best_expert": None,
                           "best_expert_utility": None, "forced": False}
    if TRAINED not in utility:
        reason = f"eval did not score '{TRAINED}' (stages.eval.policies)"
    elif not experts:
        reason = "eval compared no single expert (add only:* to stages.eval.policies): nothing to gate against"
    else:
        best = max(experts, key=lambda p: (experts[p], p))
        out.update(best_expert=best, best_expert_utility=experts[best])
        margin = utility[TRAINED] - experts[best]
        reason = (f"{TRAINED} user utility {utility[TRAINED]:.4f} {'loses to' if margin < 0 else 'is at least'} "
                  f"{best}'s {experts[best]:.4f}")
        if margin >= 0:
            return {**out, "deploy": True, "reason": reason}
    if force:
        return {**out, "deploy": True, "forced": True, "reason": f"forced (force_deploy): {reason}"}
    return {**out, "deploy": False, "reason": reason}


def smoke(url: str, cfg: Config, model_dir: Path, tasks_path: Path, envs_dir: Path, n: int) -> list[EvalRow]:
    """A held-out sample through the gateway and in process; RunFailed unless every row is equal."""
    settings = cfg.stages.eval
    tasks = stratified_subsample(heldout_sample(tasks_path, None, cfg.seed), n, cfg.seed)
    envs = load_envs(envs_dir, {t.env for t in tasks})
    rows: dict[str, list[EvalRow]] = {}
    for name, spec in (("in_process", f"hf:{model_dir}"), ("gateway", f"gateway:{url}")):
        lineup = Lineup(model_dir, model_dir, cfg.seed, settings.max_new_tokens, 1, False, None)
        block = Block.build("smoke", cfg)
        make = lineup.maker(spec, block.runtime.catalog, tasks, envs)
        assert make is not None
        rows[name] = run_policy(tasks, envs, block, name, make)
    strip = [[r.model_dump(exclude={"policy"}) for r in rs] for rs in rows.values()]
    if strip[0] != strip[1]:
        diff = next(i for i, (a, b) in enumerate(zip(*strip)) if a != b)
        raise RunFailed(f"smoke: task {tasks[diff].id} scored differently through the gateway than in process: "
                        f"{strip[1][diff]} != {strip[0][diff]}")
    return rows["in_process"] + rows["gateway"]


def deploy_target(setting: str) -> str:
    if setting != "auto":
        return setting
    return "cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") and \
        Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists() else "local"


def roll_out(settings: DeploySettings, uri: str) -> tuple[str, list[str]]:
    """Apply the release on the cluster and wait for it; (the gateway's URL, the ready Deployments)."""
    import yaml

    from toolorch.serve.release import apply_objects, kube_client, render_release, wait_ready

    values = yaml.safe_load(Path(settings.values_file).read_text()) if settings.values_file else {}
    values.setdefault("engine", {}).setdefault("checkpoint", {})["uri"] = uri
    docs = render_release(Path(settings.chart_dir), values, settings.release, settings.namespace)
    api = kube_client(settings.kube_host)
    ready = wait_ready(api, apply_objects(api, docs, settings.namespace), settings.namespace,
                       settings.ready_timeout_s)
    url = settings.gateway_url or f"http://{settings.release}-toolorch-gateway.{settings.namespace}:8080/v1"
    return url, ready


def smoke_locally(cfg: Config, settings: DeploySettings, model_dir: Path, tasks_path: Path,
                  envs_dir: Path) -> list[EvalRow]:
    """`toolorch serve` on the checkpoint with this profile, as a child process, for the smoke test; its
    config and log live in a scratch folder (a failure to start quotes the log)."""
    with tempfile.TemporaryDirectory(prefix="toolorch-deploy-") as scratch:
        profile = save_config(cfg, scratch, "gateway.yaml")
        args = ["--config", str(profile), "--orchestrator", f"hf:{model_dir}", "--envs-dir", str(envs_dir)]
        with local_gateway(args, Path(scratch) / "gateway.log", settings.start_timeout_s) as url:
            return smoke(url, cfg, model_dir, tasks_path, envs_dir, settings.smoke_tasks)


def run(cfg: Config, model_dir: Path, eval_dir: Path, tasks_path: Path, envs_dir: Path, out_dir: Path,
        metrics_path: Path) -> dict[str, Any]:
    settings: DeploySettings = cfg.stages.deploy
    out_dir, model_dir = Path(out_dir), Path(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    published = publish(model_dir, settings.model_store, settings.model_store_uri)
    ev = cfg.stages.eval
    verdict = gate(read_jsonl(Path(eval_dir) / "results.jsonl", EvalRow), ev.utility_a, ev.cost_unit_usd,
                   settings.force_deploy)
    metrics: dict[str, Any] = {"deployed": False, "verdict": verdict, "published": published, "target": None}
    if verdict["deploy"]:
        target = deploy_target(settings.target)
        if target == "cluster":
            url, ready = roll_out(settings, published["uri"])
            rows = smoke(url, cfg, model_dir, tasks_path, envs_dir, settings.smoke_tasks)
            metrics["ready_deployments"] = ready
        else:
            rows = smoke_locally(cfg, settings, model_dir, tasks_path, envs_dir)
        write_jsonl(out_dir / "smoke.jsonl", rows)
        served = [r for r in rows if r.policy == "gateway"]
        metrics.update(deployed=True, target=target, smoke={
            "tasks": len(served), "equal_to_in_process": True,
            "accuracy": float(np.mean([r.correct for r in served])),
            "cost_usd": float(np.mean([r.cost_usd for r in served]))})
    write_json(out_dir / "verdict.json", {k: metrics[k] for k in ("deployed", "verdict", "published", "target")})
    return finish(cfg, out_dir, metrics, metrics_path)


def summary(m: dict[str, Any]) -> str:
    v = m["verdict"]
    head = f"deployed ({m['target']}) {m['published']['uri']}" if m["deployed"] else "not deployed"
    smoke_line = (f"; smoke: {m['smoke']['tasks']} held-out tasks through the gateway equal in-process eval"
                  if m.get("smoke") else "")
    return f"{head}: {v['reason']}{smoke_line}"


STAGE = Stage(
    "deploy", DeploySettings, run, summary,
    inputs={"model_dir": Input("grpo"), "eval_dir": Input("eval"),
            "tasks_path": Input("synth_tasks", "heldout.jsonl"), "envs_dir": Input("synth_envs")},
    outputs={"out_dir": "reports/deploy"},
    reads=("episode", "experts", "stages.eval"),
)

if __name__ == "__main__":
    from toolorch.stages.command import main

    main("deploy")

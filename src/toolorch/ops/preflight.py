"""Preflight: every expert endpoint of a profile answers one call, with its key, before any GPU is claimed.

    python -m toolorch.ops.preflight --config configs/paper.yaml      # exit 2, one line per failing expert
    problems = check_experts(load_profile("configs/paper.yaml").catalog())

A paper run whose `openai` expert has no key or a dead endpoint would otherwise train on error
observations (every call to that expert an "error: ..." tool message) without failing. Here a
missing key or an endpoint that does not answer within `timeout_s` (two attempts) fails the run
in seconds, naming the expert. Simulated, replay and hf experts need no network and are skipped.

Keys reach pods only from the `toolorch-expert-keys` Secret (the one the helm chart's gateway reads):
each key of it is named after the environment variable it becomes, and `EXPERT_KEYS` are the
variables a profile may name in `api_key_env` (the KFP tasks and the PyTorchJob replicas mount these).
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

from toolorch.core.catalog import Catalog, CatalogExpert
from toolorch.core.errors import UsageError
from toolorch.runtime.openai_chat import EndpointError, complete, make_client

EXPERTS_SECRET = "toolorch-expert-keys"
# variable -> its key in the Secret (the same name); TOOLORCH_EXPERTS_API_KEY: self-hosted endpoints run with --api-key
EXPERT_KEYS = {var: var for var in ("OPENAI_API_KEY", "TOOLORCH_EXPERTS_API_KEY")}


def unmounted_keys(catalog: Catalog) -> list[str]:
    """`expert: VAR` for each key variable the pods would not get from the Secret."""
    return [f"{e.name}: {e.api_key_env}" for e in catalog.experts
            if e.api_key_env and e.api_key_env not in EXPERT_KEYS]


def check_expert(expert: CatalogExpert, env: Mapping[str, str], timeout_s: float) -> str | None:
    """None when the expert answers one short call with its key; else why not, naming it."""
    if expert.backend != "openai":
        return None
    key = env.get(expert.api_key_env, "") if expert.api_key_env else ""
    if expert.api_key_env and not key:
        return f"expert '{expert.name}': its key variable {expert.api_key_env} is not set"
    client = make_client(str(expert.base_url), key, min(timeout_s, expert.timeout_s))
    try:
        complete(client, attempts=2, backoff_s=0.5, model=expert.model, max_tokens=1, temperature=0.0,
                 messages=[{"role": "user", "content": "Reply with OK."}])
    except EndpointError as e:
        return f"expert '{expert.name}' ({expert.model} at {expert.base_url}): {e}"
    return None


def check_experts(catalog: Catalog, env: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> list[str]:
    """Every problem, in catalog order; the endpoints are called in parallel (one thread each)."""
    env = os.environ if env is None else env
    with ThreadPoolExecutor(max_workers=max(1, len(catalog.experts))) as pool:
        found = list(pool.map(lambda e: check_expert(e, env, timeout_s), catalog.experts))
    return [p for p in found if p]


def preflight(config_path: str, timeout_s: float = 10.0) -> None:
    """Raise UsageError listing every expert that cannot be used; returns when all answer."""
    from toolorch.stages import load_profile  # ops may use stages; imported here to keep the CLI light

    catalog = load_profile(config_path).catalog()
    problems = [f"expert {u} is not a key the pods get from the {EXPERTS_SECRET} Secret "
                f"(use one of {', '.join(EXPERT_KEYS)})" for u in unmounted_keys(catalog)]
    problems += check_experts(catalog, timeout_s=timeout_s)
    if problems:
        raise UsageError("preflight failed:\n" + "\n".join(f"  {p}" for p in problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="a profile YAML (configs/paper.yaml) or a resolved config")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="per call (two attempts per expert)")
    args = parser.parse_args(argv)
    try:
        preflight(args.config, args.timeout_s)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("preflight: every expert answered")
    return 0


if __name__ == "__main__":
    sys.exit(main())

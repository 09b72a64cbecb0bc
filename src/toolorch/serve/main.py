"""`toolorch serve`: build the gateway from a profile or a catalog file and run it under uvicorn.

    toolorch serve --config configs/tiny.yaml --orchestrator hf:<checkpoint dir> --port 8000
    toolorch serve --config configs/tiny.yaml --orchestrator hf:models/grpo --envs-dir data/envs  # + eval requests
    toolorch serve --catalog catalog.yaml --orchestrator openai:http://engine:8000/v1#orchestrator \\
        --host 0.0.0.0 --port 8080
    toolorch serve --catalog catalog.yaml --orchestrator default=openai:http://a:8000/v1#orch \\
        --orchestrator canary=openai:http://b:8000/v1#orch --canary-weight 0.1

SIGTERM drains: no new connections, in-flight requests get up to --drain-s to finish.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from toolorch.serve.catalog_file import CatalogError, Served, from_profile, load_catalog_file
from toolorch.serve.gateway import Gateway, Settings
from toolorch.serve.keys import KeysError, load_keyring
from toolorch.serve.orchestrators import SpecError, parse_variants


@dataclass
class ServeArgs:
    orchestrators: list[str]
    config: Path | None = None
    overrides: tuple[str, ...] = ()
    catalog: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    canary_weight: float = 0.0
    max_inflight: int = 256
    max_request_s: float = 1800.0
    drain_s: float = 30.0
    ledger: Path | None = None
    simulated_latency_scale: float = 0.0
    log_level: str = "info"
    envs_dir: Path | None = None  # worlds of held-out tasks: eval through the gateway
    seed: int | None = None  # None: the profile's seed (--config), else 0


class ServeError(ValueError):
    """A gateway that cannot start; the message says why (file, field, flag)."""


def served_from(args: ServeArgs) -> tuple[Served, int]:
    """What to serve, and the seed of its policies and simulated experts (the profile's, as eval's)."""
    if (args.config is None) == (args.catalog is None):
        raise ServeError("give exactly one of --config (a profile) or --catalog (a serving catalog file)")
    if args.catalog is not None:
        return load_catalog_file(args.catalog), args.seed or 0
    from toolorch.core.config import load_config

    cfg = load_config(args.config, list(args.overrides))
    return from_profile(cfg), cfg.seed if args.seed is None else args.seed


def build_gateway(args: ServeArgs) -> Gateway:
    try:
        if args.envs_dir is not None and not args.envs_dir.is_dir():
            raise ServeError(f"--envs-dir {args.envs_dir}: not a folder")
        served, seed = served_from(args)
        settings = Settings(served=served, orchestrators=parse_variants(args.orchestrators), seed=seed,
                            envs_dir=args.envs_dir,
                            canary_weight=args.canary_weight, max_inflight=args.max_inflight,
                            max_request_s=args.max_request_s, engine_threads=args.max_inflight,
                            ledger_path=args.ledger, simulated_latency_scale=args.simulated_latency_scale)
        return Gateway(settings, load_keyring())
    except (CatalogError, KeysError, SpecError, FileNotFoundError, ValueError) as e:
        raise ServeError(str(e)) from None


def serve(args: ServeArgs) -> int:
    import uvicorn

    from toolorch.serve.app import build_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2"):  # one line per upstream call otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        gateway = build_gateway(args)
    except ServeError as e:
        print(f"toolorch serve: {e}", file=sys.stderr)
        return 2
    uvicorn.run(build_app(gateway), host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=int(args.drain_s), timeout_keep_alive=30)
    return 0

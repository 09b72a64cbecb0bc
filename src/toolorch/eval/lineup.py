"""Which policies an evaluation compares, from names in the config:

    grpo, sft        checkpoints under models/ (skipped with a note when absent)
    hf:<dir>         any HF checkpoint folder (named by the folder; must exist)
    openai:<url>#<m> model <m> served behind an OpenAI-compatible endpoint, e.g. the checkpoint
                     on vLLM (scripts/serve-orchestrator.sh): played by OpenAIPolicy, greedy, with
                     the in-process checkpoint's token budget per turn, so it scores the same
                     (named openai:<m>; the key, if needed, from TOOLORCH_POLICY_API_KEY)
    gateway:<url>#<m> a deployed `toolorch serve` (model <m>, default `toolorch`) plays each whole
                     episode itself and answers with its record (eval.gateway); scored like the
                     checkpoint it serves (named gateway:<m>). It serves one catalog: it runs in the
                     blocks of the first catalog it met (main, pareto), not the shifted ones
    only:<expert>    one expert with the basic tools; `only:*` expands to every expert
    random, cascade  scripted routers (see baselines.py)
    prompted         the untrained base model with the tool list in its prompt
    oracle           the cheapest correct route per task (see oracle.py; run last)

Models are loaded once and reused by every block; scripted makers are rebuilt per
block because they read the block's config (prices, expert list).
"""
from __future__ import annotations

from pathlib import Path

from toolorch.core.catalog import Catalog
from toolorch.core.records import Task
from toolorch.eval.baselines import (
    PolicyMaker,
    cascade_maker,
    only_expert_maker,
    random_maker,
    shared_maker,
)
from toolorch.eval.gateway import GatewayEpisodes, gateway_spec
from toolorch.runtime.env import Environment
from toolorch.runtime.policies import HFPolicy, OpenAIPolicy, Policy, openai_spec
from toolorch.runtime.prompts import INSTRUCTIONS, describe_tool

SCRIPTED = ("random", "cascade")
CHECKPOINTS = ("grpo", "sft")


def is_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()


def expand(names: list[str], catalog: Catalog) -> list[str]:
    """`only:*` -> one `only:<expert>` per configured expert; unknown names are an error."""
    experts = catalog.names()
    out: list[str] = []
    for name in names:
        if name == "only:*":
            out += [f"only:{e}" for e in experts]
        elif name.startswith("only:") and name[5:] not in experts:
            raise ValueError(f"policy '{name}': no expert '{name[5:]}' in config.experts ({experts})")
        elif name.startswith("openai:"):
            openai_spec(name)  # a malformed URL fails here, before any episode runs
            out.append(name)
        elif name.startswith("gateway:"):
            gateway_spec(name)
            out.append(name)
        elif name.startswith(("only:", "hf:")) or name in (*SCRIPTED, *CHECKPOINTS, "prompted", "oracle"):
            out.append(name)
        else:
            raise ValueError(f"unknown policy '{name}' (grpo | sft | hf:<dir> | openai:<url>#<model> | "
                             f"gateway:<url>#<model> | only:<expert> | only:* | random | cascade | prompted | oracle)")
    return list(dict.fromkeys(out))


def prompted_corpus(tasks: list[Task], envs: dict[str, Environment]) -> list[str]:
    """What the untrained router's tokenizer is fitted on: the prompts it will read."""
    texts = [INSTRUCTIONS] + [t.question for t in tasks]
    for env in envs.values():
        texts += [env.spec.description] + [describe_tool(s) for s in env.spec.tools]
    return texts


class Lineup:
    """Resolves policy names to makers; records why a policy was skipped."""

    def __init__(self, models_dir: Path, work_dir: Path, seed: int, max_new_tokens: int, random_max_calls: int,
                 only_expert_search: bool, prompted_base: str | None):
        """The numbers come from the eval stage's settings (EvalSettings), where their defaults live."""
        self.models_dir = Path(models_dir)
        self.work_dir = Path(work_dir)
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.random_max_calls = random_max_calls
        self.only_expert_search = only_expert_search
        self.prompted_base = prompted_base
        self.notes: list[str] = []
        self._models: dict[str, Policy | GatewayEpisodes | None] = {}
        self._gateway_catalogs: dict[str, Catalog] = {}  # the catalog each gateway policy first ran under

    def policy_name(self, name: str) -> str:
        if name.startswith("openai:"):
            return f"openai:{openai_spec(name)[1]}"
        if name.startswith("gateway:"):
            return f"gateway:{gateway_spec(name)[1]}"
        return Path(name[3:]).name if name.startswith("hf:") else name

    def maker(self, name: str, catalog: Catalog, tasks: list[Task], envs: dict[str, Environment]) -> PolicyMaker | None:
        """None when the policy cannot run here (the reason is in `notes`)."""
        if name.startswith("only:"):
            if name[5:] not in catalog.names():
                return None  # an expert withheld from this block's config
            return only_expert_maker(name[5:], self.only_expert_search)
        if name == "random":
            return random_maker(self.seed, self.random_max_calls)
        if name == "cascade":
            return cascade_maker(catalog)
        if name.startswith("gateway:") and self._gateway_catalogs.setdefault(name, catalog) != catalog:
            note = f"{self.policy_name(name)}: a gateway serves one catalog; not run under a shifted one"
            if note not in self.notes:
                self.notes.append(note)
            return None
        model = self._model(name, tasks, envs)
        return shared_maker(model) if model is not None else None

    def _model(self, name: str, tasks: list[Task], envs: dict[str, Environment]) -> Policy | GatewayEpisodes | None:
        if name not in self._models:
            self._models[name] = self._load(name, tasks, envs)
        return self._models[name]

    def _load(self, name: str, tasks: list[Task], envs: dict[str, Environment]) -> Policy | GatewayEpisodes | None:
        if name in CHECKPOINTS:
            folder = self.models_dir / name
            if not is_checkpoint(folder):
                self.notes.append(f"{name}: no checkpoint at {folder} (no config.json); policy skipped")
                return None
            return self._hf(folder, name)
        if name.startswith("hf:"):
            folder = Path(name[3:])
            if not is_checkpoint(folder):
                raise FileNotFoundError(f"checkpoint {folder} does not exist or has no config.json")
            return self._hf(folder, self.policy_name(name))
        if name == "prompted":
            return self._hf(self._prompted_dir(tasks, envs), "prompted")
        if name.startswith("openai:"):
            return OpenAIPolicy.from_spec(name, max_tokens=self.max_new_tokens, seed=self.seed)
        if name.startswith("gateway:"):
            return GatewayEpisodes.from_spec(name, seed=self.seed, max_new_tokens=self.max_new_tokens)
        raise ValueError(f"policy '{name}' is not a model")

    def _hf(self, folder: Path, name: str) -> Policy:
        return HFPolicy(folder, max_new_tokens=self.max_new_tokens, seed=self.seed, name=name)

    def _prompted_dir(self, tasks: list[Task], envs: dict[str, Environment]) -> Path:
        if self.prompted_base is not None:
            folder = Path(self.prompted_base)
            if not is_checkpoint(folder):
                raise FileNotFoundError(f"prompted_base {folder} does not exist or has no config.json")
            return folder
        from toolorch.runtime.modeling import build_tiny_model

        self.notes.append("prompted: a random-init tiny base model (no training) with the tool list in its prompt")
        return build_tiny_model(self.work_dir / "prompted_base", prompted_corpus(tasks, envs), seed=self.seed)

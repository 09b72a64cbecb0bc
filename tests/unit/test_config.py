"""core.config: profiles load typed, a problem names the file, line and key (never a value), the
resolved copy records what was given, and credentials are refused."""
from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import toolorch.core.config as config_module
from toolorch.core.catalog import DEFAULT_PRICES
from toolorch.core.config import (
    Config,
    ConfigError,
    load_config,
    looks_like_credential,
    save_config,
)

ROOT = Path(__file__).parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
CANARY = "sk-canary-5f3e9d1b7a"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_profile_loads(path):
    cfg = load_config(path)
    for e in cfg.experts:
        cfg.price(e.price)  # every expert has a price row


def test_the_module_docstring_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(config_module, raise_on_error=False, verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_overrides_and_resolved_copy(tmp_path):
    cfg = load_config(CONFIGS[0], ["seed=7", "episode.max_turns=3", "stages.passk.k=4", "prices.mini.output=3",
                                   "experts.0.timeout_s=5"])
    assert (cfg.seed, cfg.episode.max_turns, cfg.stages["passk"]["k"], cfg.price("mini").output) == (7, 3, 4, 3.0)
    assert cfg.experts[0].timeout_s == 5.0  # a list index in the key
    again = load_config(save_config(cfg, tmp_path))
    assert again == cfg


def _fail(tmp_path: Path, text: str | None, overrides: list[str] = ()) -> str:
    path = None
    if text is not None:
        path = tmp_path / "profile.yaml"
        path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides))
    return str(e.value)


def test_a_typo_is_named_by_file_line_and_key_with_the_nearest_key(tmp_path):
    msg = _fail(tmp_path, "seed: 1\nepisode:\n  max_turns: 3\n  max_turn: 4\n")
    assert msg == f"{tmp_path / 'profile.yaml'}:4: episode.max_turn: unknown key; did you mean `max_turns`?"
    assert _fail(tmp_path, "episod:\n  max_turns: 3\n").endswith("episod: unknown section; did you mean `episode`?")
    msg = _fail(tmp_path, "seed: 1\nexperts:\n  - name: a\n    price: mini\n    timeout_s: -1\n")
    assert msg.startswith(f"{tmp_path / 'profile.yaml'}:5: experts.0.timeout_s: Input should be greater than 0")


def test_a_bad_override_is_named_by_its_key(tmp_path):
    assert _fail(tmp_path, None, ["episode.max_turns=0"]) == (
        "--set episode.max_turns: Input should be greater than or equal to 1")
    assert "--set episode.nonsense: unknown key (known: max_turns," in _fail(tmp_path, None, ["episode.nonsense=1"])
    assert _fail(tmp_path, None, ["seed"]).startswith("--set: an override must look like key=value")
    assert _fail(tmp_path, None, ["seed=[1"]) == "--set seed: the value is not valid YAML"
    assert "--set seed.x: 'seed' is not a section" in _fail(tmp_path, "seed: 1\n", ["seed.x=1"])


def test_unreadable_files_are_named(tmp_path):
    assert _fail(tmp_path, "seed: [1\n").startswith(f"{tmp_path / 'profile.yaml'}:2: not valid YAML")
    assert "a profile is a mapping of sections, got list" in _fail(tmp_path, "- 1\n")
    with pytest.raises(ConfigError, match="missing.yaml: no such config file"):
        load_config("configs/missing.yaml")


def test_credential_keys_are_refused_without_showing_the_value(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", CANARY)
    text = yaml.safe_dump({"experts": [{"name": "a", "price": "mini", "backend": "openai", "api_key": CANARY}]})
    msg = _fail(tmp_path, text)
    assert "experts.0.api_key: looks like a credential" in msg and "api_key_env" in msg and CANARY not in msg
    for override in [f"experts.0.api_key={CANARY}", f"stages.passk.openai.token={CANARY}",
                     f"stages.passk.openai={{base_url: u, model: m, password: {CANARY}}}"]:
        msg = _fail(tmp_path, "experts: [{name: a, price: mini}]\n", [override])
        assert "looks like a credential" in msg and CANARY not in msg
    # the name of the variable is fine, and its value never reaches the resolved copy
    cfg = load_config(None, ["experts=[{name: a, price: mini, backend: openai, api_key_env: MY_KEY}]"])
    assert CANARY not in save_config(cfg, tmp_path).read_text()


def test_a_value_that_fails_validation_is_not_echoed(tmp_path):
    msg = _fail(tmp_path, None, [f"experts=[{{name: a, price: mini, timeout_s: {CANARY}}}]"])
    assert "experts.0.timeout_s" in msg and CANARY not in msg


def _field_names(model: type[BaseModel], seen: set) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for sub in _models_in(field.annotation):
            if sub not in seen:
                seen.add(sub)
                names |= _field_names(sub, seen)
    return names


def _models_in(annotation) -> list[type[BaseModel]]:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


def test_no_real_setting_looks_like_a_credential():
    from toolorch.stages import profile_schema

    names = _field_names(profile_schema(), set())
    assert {"max_tokens", "max_new_tokens", "tokens_out_mean", "api_key_env"} <= names
    assert [n for n in names if looks_like_credential(n)] == []
    assert all(looks_like_credential(k) for k in ("api_key", "apiKey", "token", "client_secret", "password",
                                                  "access_token", "secret_key", "private_key"))


def test_resolved_copy_keeps_the_stage_sections_as_given(tmp_path):
    """config.resolved.yaml sits in every output folder: typing the stage sections must not change it."""
    from toolorch.stages import load_profile

    raw = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    typed = load_profile(ROOT / "configs" / "tiny.yaml")
    untyped = load_config(ROOT / "configs" / "tiny.yaml")
    assert save_config(typed, tmp_path / "a").read_bytes() == save_config(untyped, tmp_path / "b").read_bytes()
    assert yaml.safe_load((tmp_path / "a" / "config.resolved.yaml").read_text())["stages"] == raw["stages"]
    assert isinstance(untyped, Config)


def test_published_prices():
    assert DEFAULT_PRICES["frontier"].cost(1_000_000, 1_000_000) == pytest.approx(11.25)
    assert DEFAULT_PRICES["orchestrator"].cost(500_000, 500_000) == pytest.approx(0.2)

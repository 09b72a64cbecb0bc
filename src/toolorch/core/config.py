"""Typed configuration: one YAML file per profile (configs/), `key=value` overrides.

    >>> cfg = load_config("configs/tiny.yaml", ["seed=1", "episode.max_turns=4"])
    >>> cfg.seed, cfg.episode.max_turns
    (1, 4)
    >>> import tempfile
    >>> save_config(cfg, tempfile.mkdtemp()).name   # beside every output
    'config.resolved.yaml'

The sections below the stages are typed here; the stage sections are typed by the stages
layer, which hands its schema to `load_config` (`toolorch.stages.load_profile`), so a
profile is checked whole when it is loaded, before any work. A problem is reported as a
`ConfigError` naming the file, line and key (or the `--set` that caused it), with the
nearest known key for a typo. Credentials are refused wherever they appear: a profile
names the environment variable that holds a key (`api_key_env`), never the key.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
import types
from pathlib import Path
from typing import Any, Optional, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_serializer, model_validator
from pydantic_core import to_jsonable_python

from toolorch.core.catalog import (
    DEFAULT_PRICES,
    Catalog,
    EpisodeLimits,
    ExpertConfig,
    Price,
    Randomisation,
    Section,
    ToolSettings,
    build_catalog,
)
from toolorch.core.errors import UsageError
from toolorch.core.records import Preference


class EpisodeConfig(Section):
    """`episode` in a profile: the limits (`limits()`), the tool settings (`tools()`) and the
    orchestrator's price row. Defaults live here only."""

    max_turns: int = Field(8, ge=1)
    max_tokens: int = Field(2048, ge=1)  # the policy's output tokens over the episode
    budget_usd: float = Field(1.0, gt=0)
    policy_price: str = "orchestrator"
    policy_tokens_per_s: float = Field(50.0, gt=0)  # models the policy's own latency
    max_observation_chars: int = Field(2000, ge=100)
    code_timeout_s: float = Field(5.0, gt=0)
    answer_tool: bool = True  # offer `answer(model=...)`: an expert's reply ends the episode
    # Describe db tools in the prompt (their names and arguments are always listed). Off in the
    # tiny profile: a random-init model cannot read, and prompt tokens are its training cost.
    describe_db_tools: bool = True
    eval_max_turns: Optional[int] = Field(None, ge=1)  # the eval stage's turn cap; None: max_turns
    # Training episodes see the experts under per-example aliases and prices (ToolOrchestra's
    # randomised mapping and pricing); None: the catalog as declared
    randomise: Optional[Randomisation] = None

    @model_serializer(mode="wrap")
    def _without_unset_options(self, handler):
        # unset options are not written, so resolved configs saved before they existed stay byte-identical
        data = handler(self)
        for key in ("eval_max_turns", "randomise"):
            if isinstance(data, dict) and data.get(key) is None:
                data.pop(key, None)
        return data

    def limits(self) -> EpisodeLimits:
        return EpisodeLimits(**{k: getattr(self, k) for k in EpisodeLimits.model_fields})

    def eval_limits(self) -> EpisodeLimits:
        """The limits of eval's episodes: `eval_max_turns` turns where it is set."""
        return self.limits().model_copy(update={"max_turns": self.eval_max_turns or self.max_turns})

    def tools(self) -> ToolSettings:
        return ToolSettings(**{k: getattr(self, k) for k in ToolSettings.model_fields})


class Config(Section):
    profile: str = "tiny"
    seed: int = 0
    data_dir: str = "data"
    episode: EpisodeConfig = EpisodeConfig()
    prices: dict[str, Price] = DEFAULT_PRICES
    experts: list[ExpertConfig] = []
    preference: Preference = Preference()
    stages: dict[str, dict[str, Any]] = {}  # typed by the stages layer's schema (toolorch.stages.load_profile)

    def catalog(self) -> Catalog:
        """The price catalog this profile declares (experts with their prices, tool settings)."""
        return build_catalog(self.prices, self.experts, self.episode.policy_price, self.episode.tools())

    def price(self, key: str) -> Price:
        if key not in self.prices:
            raise KeyError(f"no price '{key}' in config.prices (have: {sorted(self.prices)})")
        return self.prices[key]

    def expert(self, name: str) -> ExpertConfig:
        for e in self.experts:
            if e.name == name:
                return e
        raise KeyError(f"no expert '{name}' in config.experts")


C = TypeVar("C", bound=Config)


class StageSections(Section):
    """Base of the typed `stages` section that the stages layer builds from its declarations
    (toolorch.stages.profile_schema). It keeps the sections as the profile and overrides gave
    them: config.resolved.yaml records those, key for key, as it did before they were typed."""

    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_given(cls, data: Any, handler: Any) -> StageSections:
        sections = handler(data)
        if isinstance(data, dict):
            sections._given = to_jsonable_python(data)
        return sections

    def given(self) -> dict[str, Any]:
        return copy.deepcopy(self._given)


class ConfigError(UsageError):
    """A profile or override that cannot be used; the message names the file, line and key."""


# ---------------------------------------------------------------- credentials

_CREDENTIAL_WORDS = {"password", "passwd", "passphrase", "secret", "token", "credential", "credentials", "bearer"}
_CREDENTIAL_JOINED = ("apikey", "accesskey", "privatekey", "secretkey")


def looks_like_credential(key: str) -> bool:
    """`api_key`, `token`, `client_secret`, `password`, ... but not `api_key_env` (a variable's name)
    nor `max_tokens`."""
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    if not words or words[-1] == "env":
        return False
    return bool(_CREDENTIAL_WORDS & set(words)) or any(j in "".join(words) for j in _CREDENTIAL_JOINED)


def _credential_message(where: str, key: str) -> str:
    return (f"{where}: {key}: looks like a credential, and credentials are never read from a config "
            "(the value is not shown). Put it in an environment variable and name that variable "
            "(e.g. `api_key_env: MY_KEY_VAR`)")


def _refuse_credentials(tree: Any, where: str, prefix: str = "") -> None:
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        dotted = f"{prefix}{key}"
        if isinstance(key, str) and looks_like_credential(key):
            raise ConfigError(_credential_message(where, dotted))
        _refuse_credentials(value, where, dotted + ".")


# ---------------------------------------------------------------- reading

def _read_profile(path: Path) -> tuple[dict[str, Any], str]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if tree is None:
        return {}, text
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a profile is a mapping of sections, got {type(tree).__name__}")
    return tree, text


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` -> (dotted key, YAML value). The value is never echoed: it might be a secret."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set: an override must look like key=value (one was given without a key and '=')")
    if looks_like_credential(key.rsplit(".", 1)[-1]):
        raise ConfigError(_credential_message("--set", key))
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: the value is not valid YAML") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `top` over `base`: sections merge, scalars and lists replace."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = tree
    for i, k in enumerate(keys[:-1]):
        if isinstance(node, list) and k.isdigit() and int(k) < len(node):
            node = node[int(k)]
        elif isinstance(node, dict):
            node = node.setdefault(k, {})
        else:
            raise ConfigError(f"--set {dotted}: '{'.'.join(keys[:i])}' is not a section")
    if isinstance(node, list) and keys[-1].isdigit() and int(keys[-1]) < len(node):
        node[int(keys[-1])] = value
    elif isinstance(node, dict):
        node[keys[-1]] = value
    else:
        raise ConfigError(f"--set {dotted}: '{'.'.join(keys[:-1])}' is not a section")


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> list[str]:
    """Apply `key=value` overrides in order; returns the keys they set."""
    keys = []
    for item in overrides:
        key, value = parse_override(item)
        _refuse_credentials(value, f"--set {key}", key + ".")
        _set_path(tree, key, value)
        keys.append(key)
    return keys


# ---------------------------------------------------------------- error messages

def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one key (or list index) below `annotation`, or None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return next((a for a in (_step(arg, part) for arg in get_args(annotation)) if a is not None), None)
    if origin in (list, tuple, set) and isinstance(part, int):
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
        return annotation.model_fields[part].annotation
    return None


def _known_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    annotation: Any = schema
    for part in loc:
        annotation = _step(annotation, part)
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _line_of(text: str, loc: tuple) -> int | None:
    """Line (1-based) of the deepest key of `loc` the YAML text holds."""
    node, line = yaml.compose(text), None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _problem(error: dict[str, Any], schema: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    if error["type"] != "extra_forbidden":
        return error["msg"].removeprefix("Value error, ")
    section = loc[:1] == ("stages",) and len(loc) == 2 or len(loc) == 1 and isinstance(error.get("input"), dict)
    what = "unknown section" if section else "unknown key"
    known = _known_keys(schema, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f"{what}; did you mean `{close[0]}`?" if close else f"{what} (known: {', '.join(known)})"


def _origin(loc: tuple, path: Path | None, text: str, override_keys: list[str]) -> str:
    """Where a bad value came from: the last --set that touched it, else the file and line."""
    dotted = ".".join(map(str, loc))
    for key in reversed(override_keys):
        if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
            return f"--set {key}"
    if path is None:
        return "config"
    line = _line_of(text, loc) if text else None
    return f"{path}:{line}" if line else str(path)


def describe(e: ValidationError, schema: type[BaseModel], path: Path | None = None, text: str = "",
             override_keys: list[str] = ()) -> str:
    """One line per problem: `where: key: problem`. Input values are left out (they may be secrets)."""
    lines = []
    for error in e.errors():
        loc = tuple(error["loc"])
        key = ".".join(map(str, loc)) or "<profile>"
        where = _origin(loc, path, text, list(override_keys))
        named = where if where == f"--set {key}" else f"{where}: {key}"
        lines.append(f"{named}: {_problem(error, schema)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- load / save

def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                schema: type[C] = Config) -> C:
    """The profile YAML, then `key=value` overrides over it, checked against `schema`.

    Raises ConfigError naming the file, line and key (or the --set) of every problem.
    """
    path = Path(path) if path is not None else None
    given, text = _read_profile(path) if path is not None else ({}, "")
    _refuse_credentials(given, str(path))
    # over the defaults of the sections below the stages, so `--set prices.mini.output=3` finds its row
    tree = _merge(Config().model_dump(mode="json"), given)
    override_keys = apply_overrides(tree, list(overrides or []))
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(describe(e, schema, path, text, override_keys)) from None


def resolved(cfg: Config) -> dict[str, Any]:
    """What config.resolved.yaml holds: every section below the stages in full, the stage
    sections as the profile and overrides gave them."""
    tree = cfg.model_dump(mode="json")
    if isinstance(cfg.stages, StageSections):
        tree["stages"] = cfg.stages.given()
    return tree


def save_config(cfg: Config, out_dir: str | Path, name: str = "config.resolved.yaml") -> Path:
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(yaml.safe_dump(resolved(cfg), sort_keys=False), encoding="utf-8")
    os.replace(tmp, out)
    return out

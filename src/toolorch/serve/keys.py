"""API keys and their budgets, read from the file an env var names (a mounted Kubernetes Secret).

    TOOLORCH_API_KEYS_FILE=/etc/toolorch/keys.yaml toolorch serve ...   # or the YAML itself in TOOLORCH_API_KEYS
    # keys.yaml:
    # keys:
    #   - {name: team-a, key: "<secret>", budget_usd: 25.0}   # budget_usd omitted: unlimited
    #   - {name: batch-eval, key: "<secret>"}

`name` is what metrics, logs and the ledger show; the secret never leaves this module. With no
file configured every bearer token is accepted as the key "anonymous" (a workstation), and
the gateway says so at start-up.
"""
from __future__ import annotations

import hmac
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolorch.serve.errors import ApiError

KEYS_FILE_ENV = "TOOLORCH_API_KEYS_FILE"
KEYS_ENV = "TOOLORCH_API_KEYS"
ANONYMOUS = "anonymous"


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: str = Field(min_length=8, repr=False)
    budget_usd: float | None = Field(None, gt=0)


OPEN_KEY = ApiKey(name=ANONYMOUS, key="no-keys-configured")  # every caller, when no keys file is set


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKey] = Field(min_length=1)


class KeysError(ValueError):
    """A keys file that cannot be used; the message names the file and field, never a secret."""


class Keyring:
    def __init__(self, keys: list[ApiKey] | None):
        self.keys = keys  # None: open (any bearer token)
        if keys is not None:
            names = [k.name for k in keys]
            if len(set(names)) != len(names):
                raise KeysError(f"key names must be unique: {sorted(n for n in names if names.count(n) > 1)}")

    @property
    def open(self) -> bool:
        return self.keys is None

    def budgets(self) -> dict[str, float | None]:
        return {k.name: k.budget_usd for k in self.keys or []}

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The caller's key from an `Authorization: Bearer <key>` header; ApiError 401 otherwise."""
        if self.keys is None:
            return OPEN_KEY
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        token = token.strip()
        for k in self.keys:
            if hmac.compare_digest(k.key.encode(), token.encode()):
                return k
        raise ApiError(401, "invalid API key", "invalid_api_key")


def load_keyring(env: dict[str, str] | None = None) -> Keyring:
    """From the file TOOLORCH_API_KEYS_FILE names, or the YAML text of TOOLORCH_API_KEYS (a Secret's
    key as an env var, as the Helm chart passes it); neither set: open."""
    env = env if env is not None else dict(os.environ)
    if env.get(KEYS_FILE_ENV):
        file = Path(env[KEYS_FILE_ENV])
        if not file.is_file():
            raise KeysError(f"{KEYS_FILE_ENV}={file}: no such file")
        return parse_keys(file.read_text(), str(file))
    if env.get(KEYS_ENV):
        return parse_keys(env[KEYS_ENV], KEYS_ENV)
    return Keyring(None)


def parse_keys(text: str, where: str) -> Keyring:
    try:
        return Keyring(KeysFile.model_validate(yaml.safe_load(text)).keys)
    except yaml.YAMLError as e:
        raise KeysError(f"{where}: not YAML ({e.__class__.__name__})") from None
    except ValidationError as e:
        first = e.errors()[0]  # never echo the input: it may hold a secret
        at = ".".join(str(p) for p in first["loc"])
        raise KeysError(f"{where}: {at}: {first['msg']}") from None

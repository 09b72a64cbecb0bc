"""A pipeline run's datasets into the DVC remote (MinIO), and back out: the cluster side of DVC.

    python -m toolorch.ops.dvc_publish push s3://toolorch-dvc POINTERS_DIR envs=PATH tasks=PATH passk=PATH
    python -m toolorch.ops.dvc_publish fetch s3://toolorch-dvc run-1/passk.dvc OUT_DIR
    python -m toolorch.ops.dvc_publish versions dvc.lock      # envs=<md5>.dir,tasks=...,passk=...

`push` puts each dataset into the remote under its content hash (DVC's own `dvc add` and
`dvc push`, run in a scratch DVC repository, so the hashes and the remote layout are exactly
what a workstation's DVC computes and reads) and writes one `.dvc` pointer per dataset
(`envs.dvc` names the folder `envs` beside it). A workstation fetches exactly that data:

    cp <run's dvc artifact>/*.dvc data/runs/<run>/ && git add data/runs/<run> && dvc pull -R data/runs/<run>

`fetch` is the other way: a pointer a workstation committed (a `.dvc` file, or a dvc.lock
out's md5) names a dataset version in the remote, and a cluster run starts from it:
`versions` prints the pipeline parameter `data_from_dvc` for the workstation's dvc.lock (or
.dvc pointers), and the data components then fetch those versions instead of computing them.

The endpoint comes from TOOLORCH_S3_ENDPOINT and the credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (the `toolorch-s3` secret), never from a file.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import yaml

from toolorch.core.errors import RunFailed
from toolorch.ops.storage import S3Store, split_s3
from toolorch.stages import declaration

REMOTE = "minio"  # the remote's name in .dvc/config, so pointers read the same in both repos
# name -> the stage's dvc.yaml out, as its declaration says
DATASETS = {name: declaration(stage).outputs["out_dir"]
            for name, stage in (("envs", "synth_envs"), ("tasks", "synth_tasks"), ("passk", "passk"))}
MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


class DvcFailed(RunFailed):
    """DVC could not push or pull (the remote refused, or an object is missing)."""


@contextmanager
def scratch_repo(remote_url: str, endpoint: str | None) -> Iterator[tuple[object, Path]]:
    """A throwaway DVC repository (no git) whose default remote is `remote_url`; a DVC error in
    the block becomes DvcFailed naming the remote (DVC's S3 client retries with backoff first)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    bucket, _ = split_s3(remote_url)
    S3Store().ensure_bucket(bucket)  # DVC never creates its bucket
    with tempfile.TemporaryDirectory(prefix="toolorch-dvc-") as tmp:
        repo = Repo.init(tmp, no_scm=True)
        with repo.config.edit() as conf:
            conf["core"]["remote"] = REMOTE
            conf["core"]["analytics"] = False
            conf["remote"][REMOTE] = {"url": remote_url, **({"endpointurl": endpoint} if endpoint else {})}
        try:
            yield repo, Path(tmp)
        except DvcException as e:
            raise DvcFailed(f"DVC remote {remote_url} at {endpoint or 'the default S3 endpoint'}: {e}") from e
        finally:
            repo.close()


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)  # links are followed: DVC versions what they point to
    elif src.is_file():
        shutil.copy2(src, dst)
    else:
        raise FileNotFoundError(f"{src}: no such dataset to publish")


def push(datasets: Mapping[str, str | Path], remote_url: str, pointers_dir: str | Path,
         endpoint: str | None = None) -> dict[str, str]:
    """Push each named dataset (file or folder) to the DVC remote; write `<name>.dvc` pointers
    into `pointers_dir`. Returns name -> md5 (`.dir` for a folder), as DVC records it."""
    bad = [n for n in datasets if not n or "/" in n or n.startswith(".")]
    if bad:
        raise ValueError(f"dataset names {bad}: a name is one plain path part (envs, tasks, ...)")
    endpoint = endpoint or os.environ.get("TOOLORCH_S3_ENDPOINT") or None
    out = Path(pointers_dir)
    out.mkdir(parents=True, exist_ok=True)
    with scratch_repo(remote_url, endpoint) as (repo, root):
        for name, src in datasets.items():
            _copy(Path(src), root / name)
        repo.add([str(root / name) for name in sorted(datasets)])  # DVC resolves paths from the cwd
        repo.push()
        hashes = {}
        for name in sorted(datasets):
            shutil.copy2(root / f"{name}.dvc", out / f"{name}.dvc")
            hashes[name] = pointer_md5(out / f"{name}.dvc")
    return hashes


def pointer_md5(pointer: str | Path) -> str:
    """The md5 a `.dvc` file records for its one output."""
    data = yaml.safe_load(Path(pointer).read_text())
    outs = data.get("outs") if isinstance(data, dict) else None
    if not outs or len(outs) != 1 or "md5" not in outs[0]:
        raise ValueError(f"{pointer}: not a .dvc pointer with one output and its md5")
    return outs[0]["md5"]


def fetch(pointer: str | Path, remote_url: str, out: str | Path, endpoint: str | None = None) -> Path:
    """Pull the dataset version a `.dvc` pointer names from the remote into `out`."""
    pointer = Path(pointer)
    pointer_md5(pointer)  # a clear error for a file that is not one
    endpoint = endpoint or os.environ.get("TOOLORCH_S3_ENDPOINT") or None
    out = Path(out)
    with scratch_repo(remote_url, endpoint) as (repo, root):
        shutil.copy2(pointer, root / pointer.name)
        repo.pull([str(root / pointer.name)])
        name = yaml.safe_load(pointer.read_text())["outs"][0]["path"]
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / name, out)
    return out


def fetch_md5(md5: str, remote_url: str, out: str | Path, endpoint: str | None = None) -> Path:
    """Pull the dataset with this DVC md5 (`<hex>.dir` for a folder) into `out`."""
    if not MD5.fullmatch(md5):
        raise ValueError(f"'{md5}' is not a DVC md5 (32 hex digits, '.dir' for a folder)")
    with tempfile.TemporaryDirectory() as tmp:
        pointer = Path(tmp, "data.dvc")
        pointer.write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "data", "hash": "md5"}]}))
        return fetch(pointer, remote_url, out, endpoint)


def parse_versions(spec: str) -> dict[str, str]:
    """'envs=<md5>.dir,passk=<md5>.dir' (the `data_from_dvc` parameter) -> {name: md5}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, md5 = item.partition("=")
        if not sep or name not in DATASETS or not MD5.fullmatch(md5):
            raise ValueError(f"data_from_dvc '{item}': expected name=md5 with name in {sorted(DATASETS)} "
                             "and md5 as dvc.lock records it")
        out[name] = md5
    return out


def versions(paths: list[str | Path]) -> str:
    """The `data_from_dvc` parameter for a dvc.lock (its data stages' outs) or `.dvc` pointers (by file name)."""
    found: dict[str, str] = {}
    for path in map(Path, paths):
        if path.suffix == ".dvc":
            found[path.stem] = pointer_md5(path)
            continue
        lock = yaml.safe_load(path.read_text()) or {}
        for stage in (lock.get("stages") or {}).values():
            for out in stage.get("outs", []):
                name = {v: k for k, v in DATASETS.items()}.get(out.get("path"))
                if name:
                    found[name] = out["md5"]
    return ",".join(f"{k}={found[k]}" for k in DATASETS if k in found)


def fetch_version(name: str, data_from_dvc: str, remote_url: str, out: str | Path) -> bool:
    """What a data component does first: fetch dataset `name` when `data_from_dvc` names a version
    of it (True), else leave it to the stage (False)."""
    md5 = parse_versions(data_from_dvc).get(name)
    if md5 is None:
        return False
    if not remote_url:
        raise ValueError(f"data_from_dvc names {name}, but dvc_remote is empty: no remote to fetch it from")
    fetch_md5(md5, remote_url, out)
    return True


def main(argv: list[str] | None = None) -> None:
    import typer

    from toolorch.stages.command import reported

    app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True, add_completion=False)

    @app.command("push")
    def push_cmd(remote_url: str, pointers_dir: Path, datasets: list[str]) -> None:
        """Push name=path datasets; write name.dvc pointers into POINTERS_DIR."""
        pairs = dict(d.split("=", 1) for d in datasets if "=" in d)
        if len(pairs) != len(datasets):
            raise typer.BadParameter("each dataset is name=path")
        with reported("dvc_publish push"):
            for name, md5 in push(pairs, remote_url, pointers_dir).items():
                typer.echo(f"{name}: {md5}")

    @app.command("fetch")
    def fetch_cmd(remote_url: str, pointer: Path, out: Path) -> None:
        """Pull the dataset a .dvc pointer names into OUT."""
        with reported("dvc_publish fetch"):
            typer.echo(fetch(pointer, remote_url, out))

    @app.command("versions")
    def versions_cmd(paths: list[Path]) -> None:
        """The data_from_dvc pipeline parameter for a dvc.lock or .dvc pointers."""
        with reported("dvc_publish versions"):
            typer.echo(versions(paths))

    app(argv)


if __name__ == "__main__":
    main()

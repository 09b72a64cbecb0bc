"""`python -m toolorch.ops.storage_cli ...`: buckets, folder push/pull, and a stage run over s3:// paths."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from toolorch.ops.storage import S3Store, StorageError, s3_staged

app = typer.Typer(help="S3/MinIO storage for toolorch artifacts.", no_args_is_help=True, add_completion=False)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{flag} '{item}' must look like name=path")
        out[name] = value
    return out


def _fail(e: StorageError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@app.command("ensure-bucket")
def ensure_bucket(bucket: str) -> None:
    """Create a bucket unless it exists."""
    try:
        created = S3Store().ensure_bucket(bucket)
    except StorageError as e:
        _fail(e)
    typer.echo(f"{'created' if created else 'exists'}: s3://{bucket}")


@app.command()
def push(local: Path, url: str) -> None:
    """Upload a file or a folder to an s3:// URL."""
    try:
        S3Store().push(local, url)
    except StorageError as e:
        _fail(e)


@app.command()
def pull(url: str, local: Path) -> None:
    """Download an object or a folder of objects to a local path."""
    try:
        S3Store().pull(url, local)
    except StorageError as e:
        _fail(e)


@app.command("run-stage")
def run_stage(
    stage: str = typer.Argument(..., help="Module in toolorch.stages, e.g. synth_tasks."),
    config: Optional[str] = typer.Option(None, help="Profile YAML: a path or an s3:// URL."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    in_: list[str] = typer.Option([], "--in", help="Input: run() keyword=path or s3:// URL (repeatable)."),
    out: list[str] = typer.Option([], "--out", help="Output: run() keyword=path or s3:// URL (repeatable)."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure."),
) -> None:
    """Run one stage with s3:// inputs downloaded first and s3:// outputs uploaded after.

    Under torchrun every rank downloads; only rank 0 uploads.
    """
    from toolorch.stages import declaration, load_profile
    from toolorch.stages.command import reported

    with reported(f"run-stage {stage}", debug):
        run = declaration(stage).run
        inputs = _pairs(in_, "--in") | ({"config": config} if config else {})
        with s3_staged(inputs, _pairs(out, "--out"), upload=os.environ.get("RANK", "0") == "0") as paths:
            cfg = load_profile(Path(paths.pop("config")) if config else None, set_)
            metrics = run(cfg, **paths)
    typer.echo(json.dumps(metrics, sort_keys=True, default=str))


if __name__ == "__main__":
    app()

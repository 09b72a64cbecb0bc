"""The stage commands, built from the declarations, and the one error path every command shares.

    toolorch passk --config configs/tiny.yaml --set stages.passk.k=4       # toolorch.cli registers them
    python -m toolorch.stages.passk --config configs/tiny.yaml --debug     # each stage module's __main__

A command's options are the profile (`--config`, `--set`), one flag per path keyword of the
stage's run() with its declared default, the stage's further options, and `--debug`. An
expected failure prints one line naming the file, line or key, and exits 2 for bad usage (a
config key, a path, a policy name) or 1 for a run that failed (bad input data, a dead
endpoint, a failed check); `--debug` shows the traceback instead. Outputs of a staged stage
are built aside and moved into place only when it succeeds.
"""
from __future__ import annotations

import inspect
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, get_type_hints

import typer
from pydantic import ValidationError

from toolorch.core.errors import RunFailed, UsageError
from toolorch.core.progress import configure_logging
from toolorch.runtime.openai_chat import EndpointError
from toolorch.stages import declaration, default_paths, load_profile
from toolorch.stages.headline import write_headline
from toolorch.stages.io import staged
from toolorch.stages.stage import Stage, flag

# Failures a user can act on (bad values and files, unreachable endpoints, failed checks). Anything
# else is a bug and keeps its traceback.
EXPECTED = (ValueError, OSError, RunFailed, EndpointError, sqlite3.DatabaseError)
USAGE = (UsageError, FileNotFoundError, NotADirectoryError)


def describe(e: BaseException) -> str:
    """One message for an expected failure; a pydantic error lists fields, never input values."""
    if isinstance(e, ValidationError):
        where = "; ".join(f"{'.'.join(map(str, err['loc'])) or e.title}: {err['msg']}" for err in e.errors()[:5])
        return f"invalid {e.title}: {where}"
    return str(e) or type(e).__name__


@contextmanager
def reported(command: str, debug: bool = False) -> Iterator[None]:
    """The error path of every command: an expected failure becomes one message and an exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo(f"{command}: interrupted", err=True)
        raise typer.Exit(130) from None
    except EXPECTED as e:
        if debug:
            raise
        typer.echo(f"{command}: error: {describe(e)}", err=True)
        raise typer.Exit(2 if isinstance(e, USAGE) else 1) from None


def execute(stage: Stage, cfg: Any, paths: dict[str, Any]) -> dict[str, Any]:
    """Run the stage; a staged one writes its output folders aside and moves them in on success."""
    if not stage.staged:
        return stage.run(cfg, **paths)
    with staged({k: Path(paths[k]) for k in stage.outputs}) as partial:
        return stage.run(cfg, **{**paths, **partial})


def _option(keyword: str, annotation: Any, default: Any, help: str) -> inspect.Parameter:
    return inspect.Parameter(keyword, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, flag(keyword), help=help))


def _path_options(stage: Stage) -> list[inspect.Parameter]:
    defaults = default_paths(stage)
    params = []
    for keyword, default in defaults.items():
        if keyword in stage.inputs:
            what = f"Input, made by {' and '.join(stage.inputs[keyword].stages).replace('_', '-')}."
        elif keyword == "metrics_path":
            what = "Metrics JSON (read by dvc and KFP)."
        else:
            what = "Output folder."
        if stage.outputs.get(keyword, "") is None:  # defaults to a setting of the profile
            params.append(_option(keyword, Optional[Path], None, f"{what} Default: stages.{stage.name}.{keyword} "
                                                                 f"({default})."))
        else:
            params.append(_option(keyword, Path, default, what))
    return params


def stage_command(stage: Stage) -> Callable[..., None]:
    """The typer command of a stage, its options derived from the declaration."""
    hints = get_type_hints(stage.run)
    signature = inspect.signature(stage.run)
    params = [
        _option("config", Optional[Path], None, "Profile YAML, e.g. configs/tiny.yaml."),
        inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, annotation=list[str],
                          default=typer.Option([], "--set", help="Config override key=value (repeatable).")),
        *_path_options(stage),
        *(_option(k, hints[k], signature.parameters[k].default, h) for k, h in stage.options.items()),
        _option("debug", bool, False, "Show the traceback of a failure."),
    ]

    def command(config: Path | None, set_: list[str], debug: bool, **paths: Any) -> None:
        configure_logging()
        with reported(stage.command, debug):
            cfg = load_profile(config, set_)
            result = execute(stage, cfg, paths)
            write_headline(stage.name, result, paths["metrics_path"])
        typer.echo(stage.summary(result))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = stage_help(stage)
    command.__name__ = stage.name
    return command


def stage_help(stage: Stage) -> str:
    """The stage module's description: its docstring after the command line it opens with."""
    doc = inspect.getmodule(stage.run).__doc__ or ""
    paragraphs = [p.strip() for p in doc.split("\n\n")]
    return paragraphs[1].split("\n")[0] if len(paragraphs) > 1 else stage.command


def main(name: str) -> None:
    """`python -m toolorch.stages.<name>`: that stage's command on its own."""
    typer.run(stage_command(declaration(name)))

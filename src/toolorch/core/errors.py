"""The two kinds of failure a user can act on, and the exit code each gets from every command.

    raise UsageError("--tasks-path data/x.jsonl: no such file")   # exit 2: fix the command or the config
    raise RunFailed("teacher endpoint failed 3 times in a row")    # exit 1: the run itself failed

A message names the file (and line) or the config key it is about. Secrets are never put in one.
"""
from __future__ import annotations


class UsageError(ValueError):
    """The command was given something it cannot use: a config key or value, a path, a policy name."""

    exit_code = 2


class RunFailed(RuntimeError):
    """The run started with good arguments and could not finish: bad input data, a dead endpoint,
    a failed check."""

    exit_code = 1

"""Run the grpo stage and SIGKILL the process at one instant inside a checkpoint save.

    python tests/stages/grpo_killer.py POINT N --config ... --out-dir ...   # the grpo stage's flags

POINT is where, in the N-th save of this process, the kill lands (see KILLS); `none` runs
the stage untouched. The kill is SIGKILL from the process itself: no handler, no flush, no
atexit, as a node dying or the OOM killer would.
"""
from __future__ import annotations

import os
import signal
import sys

from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

from toolorch.train import checkpoint


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_on_call(owner: object, attr: str, nth: int, when=lambda *a, **k: True) -> None:
    """Replace owner.attr with a wrapper that dies at its nth call for which `when(args)` holds."""
    real = getattr(owner, attr)
    seen = [0]

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            seen[0] += 1
            if seen[0] == nth:
                _die()
        return real(*args, **kwargs)

    setattr(owner, attr, wrapper)


def _kill_on_replace(nth: int) -> None:
    """Die after LATEST.tmp is written and synced, before it is renamed over LATEST."""
    _kill_on_call(os, "replace", nth, when=lambda src, dst, **_: str(dst).endswith("/" + checkpoint.LATEST))


KILLS = {
    # some shards written, the checkpoint's index (.metadata) not yet
    "shards": lambda n: _kill_on_call(FsspecWriter, "finish", n),
    # every shard and the index written, meta.pkl not yet
    "meta": lambda n: _kill_on_call(checkpoint, "_write", n, when=lambda fs, f, d: f.endswith(checkpoint.META)),
    # the checkpoint complete, LATEST still on the previous one
    "commit": lambda n: _kill_on_call(checkpoint, "_write", n, when=lambda fs, f, d: f.endswith(checkpoint.LATEST)),
    "rename": _kill_on_replace,
    # LATEST moved on, the older folders not yet deleted
    "cleanup": lambda n: _kill_on_call(checkpoint, "_drop_all_but", n),
}

if __name__ == "__main__":
    point, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if point != "none":
        KILLS[point](nth)
    from toolorch.stages.command import main

    sys.argv = ["grpo", *argv]
    main("grpo")

"""Training scalars: TensorBoard event files (when tensorboard is installed), dvclive curves and a history list.

    log = ScalarLog(out_dir / "tensorboard", enabled=dist.main, curves=out_dir / "dvclive",
                    history=out_dir / "history.jsonl", resume=True)
    log.resumed_at(step)                            # the checkpoint's step: later rows are re-logged
    log.write(step, {"reward/total": 0.4, "kl": 0.01})

With a `history` file every step's row is appended to it as it is logged, so a resumed run's
history (what the metrics JSON reports) holds the steps before the restart too.

dvclive writes one TSV per scalar (`<curves>/plots/metrics/reward/total.tsv`: step, total), so a
scalar that only some steps have (a tool's share of calls) never gives a plot rows of different
keys; dvc.yaml's plots (toolorch.ops.dvc_yaml) draw them with `dvc plots show`.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from toolorch.runtime.rewards import TERMS, RewardTerms


class ScalarLog:
    """`curves`: the dvclive folder (None: no curves); `history`: a JSONL file of the rows (None:
    in memory only); `resume`: append to both (a resumed run)."""

    def __init__(self, folder: str | Path, enabled: bool = True, curves: str | Path | None = None,
                 resume: bool = False, history: str | Path | None = None):
        self.history_path = Path(history) if history is not None and enabled else None
        self.history: list[dict[str, Any]] = []
        if self.history_path is not None and resume and self.history_path.exists():
            # whole lines only: a run killed mid-write leaves a partial last one (a later step's,
            # which the resumed run logs again)
            self.history = [json.loads(line) for line in self.history_path.read_text().split("\n")[:-1]]
        self._save_history()
        self.writer = None
        self.live = None
        if enabled and curves is not None:
            self.live = _curves(curves, resume)
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: the history still goes to the metrics JSON
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(log_dir=str(folder))

    def _save_history(self) -> None:
        if self.history_path is not None:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            self.history_path.write_text("".join(json.dumps(row) + "\n" for row in self.history))

    def resumed_at(self, step: int) -> None:
        """Training goes on from the checkpoint at `step`: rows logged after it are logged again."""
        self.history = [row for row in self.history if row["step"] <= step]
        self._save_history()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self.history.append({"step": step, **scalars})
        if self.history_path is not None:
            with self.history_path.open("a") as f:
                f.write(json.dumps(self.history[-1]) + "\n")
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, float(value), step)
            self.writer.flush()
        if self.live is not None:
            self.live.step = step
            for key, value in scalars.items():
                self.live.log_metric(key, float(value))
            self.live.next_step()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.live is not None:
            self.live.end()
        self.writer = self.live = None


def rollout_scalars(records: list[dict[str, Any]]) -> dict[str, float]:
    """Means over rollout records ({terms, correct, cost, latency, tools, user}): reward terms,
    accuracy, cost, latency, the tool-call mix (share of all calls per tool), and the cost per
    kind of user: whether the policy spends less for thrifty users shows up while it trains."""
    if not records:
        return {}
    out = {f"reward/{k}": float(np.mean([r["terms"][k] for r in records])) for k in (*TERMS, "total")}
    out["accuracy"] = float(np.mean([r["correct"] for r in records]))
    out["cost_usd"] = float(np.mean([r["cost_usd"] for r in records]))
    out["latency_s"] = float(np.mean([r["latency_s"] for r in records]))
    out["turns"] = float(np.mean([r["turns"] for r in records]))
    out["malformed"] = float(np.mean([r["malformed"] for r in records]))  # rollouts with a malformed call
    calls = Counter(t for r in records for t in r["tools"])
    total = sum(calls.values())
    for tool, n in sorted(calls.items()):
        out[f"tool_mix/{tool}"] = n / total
    for user in sorted({r["user"] for r in records}):
        out[f"cost_usd_by_user/{user}"] = float(np.mean([r["cost_usd"] for r in records if r["user"] == user]))
    return out


def rollout_record(terms: RewardTerms, traj: Any, user: str) -> dict[str, Any]:
    """`user`: the kind of preference the rollout served (synth.preferences.preference_kind)."""
    return {"terms": terms.as_dict(), "correct": traj.correct, "cost_usd": traj.usage.cost_usd,
            "latency_s": traj.usage.latency_s, "turns": len(traj.turns),
            "malformed": any(t.malformed for t in traj.turns),
            "tools": [t.call.name for t in traj.turns if t.call is not None], "user": user}


def _curves(folder: str | Path, resume: bool):
    """dvclive's curve writer without its repository hooks. dvc.yaml declares the plots
    (toolorch.ops.dvc_yaml) and experiments are `dvc exp run`'s business, so the hooks add nothing;
    and they harm: in a git checkout without DVC they run `dvc init`, in one without commits they
    raise (dvclive 3.49, pinned)."""
    from dvclive import Live

    class Curves(Live):
        def _init_dvc(self) -> None:
            pass

    return Curves(str(folder), resume=resume, report=None, save_dvc_exp=False, dvcyaml=None)

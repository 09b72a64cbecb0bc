"""The training curves as a report: PNG charts of the dvclive scalars and a report.md showing them.

    write_curves(out_dir / "dvclive", out_dir / "curves", "grpo")   # curves/report.md + curves/*.png

Scalars under a folder (reward/outcome, reward/total, tool_mix/search, ...) share one chart; the
others (loss, kl, accuracy, ...) get one small chart each in a grid. The KFP components inline the
PNGs into a Markdown artifact (toolorch.ops.kfp_io.markdown_report), so the run page shows the
curves; `dvc plots show` draws the same TSVs locally.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

Curve = tuple[list[float], list[float]]  # steps, values


def read_curves(live_dir: str | Path) -> dict[str, Curve]:
    """Every scalar dvclive logged: "reward/total" -> (steps, values), in key order."""
    root = Path(live_dir) / "plots" / "metrics"
    curves: dict[str, Curve] = {}
    for tsv in sorted(root.rglob("*.tsv")):
        key = tsv.relative_to(root).with_suffix("").as_posix()
        with tsv.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        curves[key] = ([float(r["step"]) for r in rows], [float(r[tsv.stem]) for r in rows])
    return curves


def grouped(curves: dict[str, Curve]) -> dict[str, dict[str, Curve]]:
    """folder -> {last part: curve}; top-level scalars under ""."""
    groups: dict[str, dict[str, Curve]] = {}
    for key, curve in curves.items():
        folder, _, name = key.rpartition("/")
        groups.setdefault(folder, {})[name] = curve
    return groups


def write_curves(live_dir: str | Path, out_dir: str | Path, title: str) -> Path:
    """Charts of every logged scalar and report.md (a line saying so when nothing was logged)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = grouped(read_curves(live_dir))
    lines = [f"# {title}: training curves", ""]
    if not groups:
        lines.append(f"No scalars were logged (nothing under {Path(live_dir) / 'plots' / 'metrics'}).")
    for folder, curves in sorted(groups.items(), key=lambda kv: (kv[0] != "reward", kv[0] == "", kv[0])):
        name = folder.replace("/", "_") or "scalars"
        if folder:
            fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
            for label, (steps, values) in curves.items():
                ax.plot(steps, values, marker=".", label=label)
            ax.set_xlabel("step")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        else:
            cols = 3
            rows = math.ceil(len(curves) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(10, 2.4 * rows), dpi=100, squeeze=False)
            for ax, (label, (steps, values)) in zip(axes.flat, curves.items()):
                ax.plot(steps, values, marker=".")
                ax.set_title(label, fontsize=9)
                ax.grid(alpha=0.3)
            for ax in list(axes.flat)[len(curves):]:
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png")
        plt.close(fig)
        last = ", ".join(f"{label} {values[-1]:.4g}" for label, (_, values) in curves.items() if values)
        lines += [f"## {folder or 'Other scalars'}", "", f"![{name}]({name}.png)", "", f"Last step: {last}.", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report

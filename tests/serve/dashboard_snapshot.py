"""A picture of the chart's dashboards filled with live data, for the chart's docs: each dashboard's
panels laid out on Grafana's 24-column grid, every query run as a range query against the real
Prometheus of the live-dashboard test, drawn with matplotlib (no Grafana runs here: the layout,
titles, legends and units are the dashboard JSON's own, the look is not Grafana's), plus a Markdown
list of every panel with its query and the latest values.

    TOOLORCH_DASHBOARD_SNAPSHOT=helm/docs python -m pytest tests/serve/test_dashboards_live.py -m slow
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROW_H = 0.45  # inches per grid row unit
COL_W = 0.75  # inches per grid column


def legend(fmt: str, metric: dict) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt or "")
    return text.strip() or ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"


def range_series(prom, expr: str, start: float, end: float, step: float) -> list[dict]:
    data = prom.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
    return data["result"]


def panel_data(prom, panel: dict, fill, start: float, end: float, step: float) -> list[tuple[str, list, list]]:
    """(legend, seconds since start, values) for every series of every target of the panel."""
    lines = []
    for target in panel["targets"]:
        for series in range_series(prom, fill(target["expr"]), start, end, step):
            xs = [float(t) - start for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            lines.append((legend(target.get("legendFormat", ""), series["metric"]), xs, ys))
    return lines


def draw(board: dict, panels: list[dict], data: list[list], unit_of, path: Path) -> None:
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24 * COL_W, height * ROW_H))
    fig.suptitle(f"{board['title']} (live data from the test gateway; drawn with matplotlib)", fontsize=13)
    for panel, lines in zip(panels, data):
        g = panel["gridPos"]
        ax = fig.add_axes([g["x"] / 24 + 0.006, 1 - (g["y"] + g["h"]) / height + 0.03,
                           g["w"] / 24 - 0.03, g["h"] / height - 0.07])
        ax.set_title(panel["title"], fontsize=10, loc="left")
        if panel["type"] == "stat":
            ax.axis("off")
            text = "  ".join(f"{name}: {ys[-1]:g}" for name, _, ys in lines if ys) or "No data"
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14)
            continue
        for name, xs, ys in lines:
            ax.plot(xs, ys, label=name[:40])
        if not lines:
            ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("s", fontsize=7)
        ax.set_ylabel(unit_of(panel), fontsize=7)
        ax.tick_params(labelsize=7)
        if lines:
            ax.legend(fontsize=6, loc="upper left")
    fig.savefig(path, dpi=60)
    plt.close(fig)


def write_snapshot(prom, boards: dict[str, dict], panels_of, fill, start: float, out: Path) -> None:
    """One PNG per dashboard and panels.md, from the series Prometheus holds since `start`."""
    out.mkdir(parents=True, exist_ok=True)
    end = time.time()
    step = max(1.0, round((end - start) / 60, 1))
    unit_of = lambda p: p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")  # noqa: E731
    rows = ["# Dashboards with live data", "",
            "Each panel of the chart's dashboards (`helm/dashboards/*.json`), its query, and the latest values",
            "from a live gateway (scripted orchestrator engine, simulated experts failing 30% of calls, real",
            "Prometheus), written by `TOOLORCH_DASHBOARD_SNAPSHOT=helm/docs python -m pytest",
            "tests/serve/test_dashboards_live.py -m slow`. The PNGs beside this file draw the same series with",
            "matplotlib on the dashboards' own grid; the engine dashboard reads vLLM's series (vllm-marked tests).",
            f"Window: {end - start:.0f} s.", ""]
    for name, board in boards.items():
        panels = panels_of(board)
        data = [panel_data(prom, p, fill, start, end, step) for p in panels]
        draw(board, panels, data, unit_of, out / f"{name}.png")
        rows += [f"## {board['title']} (`{name}.png`)", "", "| panel | unit | latest values | query |", "|---|---|---|---|"]
        for p, lines in zip(panels, data):
            latest = "; ".join(f"{n}: {ys[-1]:.4g}" for n, _, ys in lines[:4] if ys) or "no data"
            queries = " / ".join(f"`{t['expr']}`" for t in p["targets"]).replace("|", "\\|")
            rows.append(f"| {p['title']} | {unit_of(p)} | {latest} | {queries} |")
        rows.append("")
    (out / "dashboards.md").write_text("\n".join(rows))

"""The human-facing outputs of the eval stage: report.md and pareto.png.

Both are rendered from the summary dict (itself computed from results.jsonl), so
nothing here computes a number the metrics JSON does not hold.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Distinct colours per policy family; the trained policy stands out.
COLOURS = {"grpo": "#d62728", "sft": "#ff7f0e", "oracle": "#2ca02c", "cascade": "#9467bd",
           "prompted": "#8c564b", "random": "#7f7f7f"}
EXPERT_COLOUR = "#1f77b4"


def _colour(policy: str) -> str:
    return COLOURS.get(policy, EXPERT_COLOUR if policy.startswith("only:") else "#e377c2")


def plot_pareto(points: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    floor = min((p["cost_usd"] for p in points if p["cost_usd"] > 0), default=1e-6)
    swept: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if p["cost_weight"] is not None:
            swept.setdefault(p["policy"], []).append(p)
    for policy, pts in swept.items():  # the preference sweep as a line through its points
        pts = sorted(pts, key=lambda p: p["cost_weight"])
        ax.plot([max(p["cost_usd"], floor) for p in pts], [p["accuracy"] for p in pts], "-o", ms=5,
                color=_colour(policy), alpha=0.6, label=f"{policy}: preference sweep (cost weight 0 -> 1)")
        for p, dy in ((pts[0], 7), (pts[-1], -14)):  # one end above, one below: they may coincide
            ax.annotate(f"w={p['cost_weight']:g}", (max(p["cost_usd"], floor), p["accuracy"]),
                        textcoords="offset points", xytext=(0, dy), ha="center", fontsize=8,
                        color=_colour(policy))
    labels: dict[tuple[float, float], list[str]] = {}  # coinciding points share one label
    for p in points:
        if p["cost_weight"] is not None:
            continue
        x = max(p["cost_usd"], floor)
        marker = "*" if p["upper_bound"] else ("D" if not p["policy"].startswith("only:") else "s")
        ax.scatter(x, p["accuracy"], s=160 if marker == "*" else 70, marker=marker,
                   color=_colour(p["policy"]), edgecolor="black", linewidth=0.6, zorder=3)
        key = (round(math.log10(x), 2), round(p["accuracy"], 2))
        labels.setdefault(key, []).append(p["label"] + (" (upper bound)" if p["upper_bound"] else ""))
    placed: list[tuple[float, float]] = []
    for (log_x, y), names in sorted(labels.items()):
        # a neighbour's label already sits above-right: put this one below, so they don't overprint
        crowded = any(abs(log_x - px) < 0.35 and abs(y - py) < 0.04 for px, py in placed)
        ax.annotate(" = ".join(names), (10 ** log_x, y), textcoords="offset points",
                    xytext=(7, -13) if crowded else (7, 5), fontsize=9)
        placed.append((log_x, y))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"${x:.2g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)  # room for the labels of the outermost points
    ax.set_xlabel("mean cost per task (USD, log scale)")
    ax.set_ylabel("accuracy (held-out tasks)")
    ax.set_ylim(-0.05, 1.08)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=11)
    if swept:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _ci(ci: list[float], fmt: str) -> str:
    return f"[{format(ci[0], fmt)}, {format(ci[1], fmt)}]"


def policy_table(policies: dict[str, dict[str, Any]]) -> list[str]:
    lines = [("| policy | n | accuracy [95% BCa CI] | mean cost USD [95% BCa CI] | mean latency s | turns "
              "| malformed | utility [95% BCa CI] | user utility [95% BCa CI] | tool mix |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in policies.items():
        mix = ", ".join(f"{k} {v:.0%}" for k, v in s["tool_mix"].items()) or "none"
        lines.append(
            f"| {name} | {s['n']} | {s['accuracy']:.3f} {_ci(s['ci95']['accuracy'], '.3f')} "
            f"| {s['cost_usd']:.5f} {_ci(s['ci95']['cost_usd'], '.5f')} | {s['latency_s']:.1f} | {s['turns']:.2f} "
            f"| {s['malformed_share']:.0%} | {s['utility']:.3f} {_ci(s['ci95']['utility'], '.3f')} "
            f"| {s['user_utility']:.3f} {_ci(s['ci95']['user_utility'], '.3f')} | {mix} |")
    return lines


def _margin(m: dict[str, Any] | None, fmt: str) -> str:
    if m is None:
        return "-"
    mark = " ↑" if m["above_zero"] else " ↓" if m["below_zero"] else ""  # the interval excludes zero
    return f"{format(m['mean'], '+' + fmt)} {_ci(m['ci95'], '+' + fmt)}{mark}"


def paired_section(paired: dict[str, dict[str, Any]], trained: str | None) -> list[str]:
    if not paired:
        return ["No trained policy was evaluated next to baselines: no paired margins."]
    lines = [f"Per-task differences, {trained} minus each baseline, over the tasks both scored (matched by "
             "task id); mean and 95% BCa interval. ↑ / ↓: the interval lies entirely above / below zero. "
             "Detectable: the smallest true user-utility margin these tasks show above zero four times in five "
             "(80% power).", "",
             "| baseline | n | Δ accuracy [95% CI] | Δ cost USD [95% CI] | Δ utility [95% CI] "
             "| Δ user utility [95% CI] | detectable Δ user utility |",
             "|---|---|---|---|---|---|---|"]
    for name, m in paired.items():
        lines.append(f"| {name} | {m['n']} | {_margin(m['accuracy'], '.3f')} | {_margin(m['cost_usd'], '.5f')} "
                     f"| {_margin(m['utility'], '.3f')} | {_margin(m['user_utility'], '.3f')} "
                     f"| {'-' if m['user_utility'] is None else _detectable(m['user_utility'])} |")
    return lines


def _share(x: float | None) -> str:
    return "never" if x is None else f"{x:.1%}"


def routing_section(r: dict[str, Any]) -> list[str]:
    if r["apgr"] is None:
        return [f"APGR, CPT(50%), CPT(80%): not computed ({r['note']})."]
    lines = [f"**APGR** {r['apgr']:.3f}, **CPT(50%)** {_share(r['cpt50'])}, **CPT(80%)** {_share(r['cpt80'])} "
             f"(strong: {r['strongest']}, weak: {r['weakest']}). PGR = (accuracy − weak) / (strong − weak); "
             f"{r['note']}.", "",
             "| point | n | strong share | accuracy | PGR |", "|---|---|---|---|---|"]
    for p in r["points"]:
        lines.append(f"| {p['label']} | {p['n']} | {p['strong_share']:.1%} | {p['accuracy']:.3f} | {p['pgr']:.3f} |")
    return lines


def headroom_section(h: dict[str, Any] | None) -> list[str]:
    if h is None:
        return ["Not computed: it needs two or more single-expert (only:) policies scored on the same tasks."]
    choice = ", ".join(f"{c} → {p}" for c, p in h["category_choice"].items())
    return [f"The category router sends each task to the single expert with the best mean utility on its category "
            f"({choice}; chosen on these tasks: an optimistic bound for routing by category). Its utility "
            f"{h['router_utility']:.3f} against the best single expert's ({h['best_single_expert']}) "
            f"{h['best_single_utility']:.3f}: paired margin {_margin(h['margin'], '.3f')} over {h['n']} tasks. "
            "Where this interval holds zero, routing between these experts cannot beat the best of them "
            "measurably; only what the orchestrator does itself (tools, fewer calls) can.", *user_headroom(h)]


def user_headroom(h: dict[str, Any]) -> list[str]:
    u = h.get("user_utility")
    if u is None:
        return []
    held = u["held_out_choice"]
    return ["", f"On user utility, the router that reads the category and the user's weights ({u['groups']} groups, "
                f"each sent to its best single expert on these tasks) scores {u['router_utility']:.3f} against the "
                f"best single expert's ({u['best_single_expert']}) {u['best_single_utility']:.3f}: paired margin "
                f"{_margin(u['margin'], '.3f')}. No policy that picks one expert per task by category and user "
                "can expect more over the best single expert on these tasks. Chosen without the task it routes "
                f"(each task by the other tasks of its group) the router scores {held['router_utility']:.3f}: "
                f"paired margin {_margin(held['margin'], '.3f')}, against a margin of "
                f"{_detectable(held['margin'])} that these {h['n']} tasks detect four times in five."]


def _detectable(m: dict[str, Any]) -> str:
    return "-" if m.get("detectable") is None else f"{m['detectable']:.3f}"


def category_table(policies: dict[str, dict[str, Any]]) -> list[str]:
    cats = sorted({c for s in policies.values() for c in s["by_category"]})
    lines = ["| policy | " + " | ".join(f"{c} (n) acc / cost" for c in cats) + " |",
             "|---|" + "---|" * len(cats)]
    for name, s in policies.items():
        cells = []
        for c in cats:
            cs = s["by_category"].get(c)
            cells.append(f"({cs['n']}) {cs['accuracy']:.2f} / {cs['cost_usd']:.5f}" if cs else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Tool mix per category (share of the policy's calls: db, search, code tools or an expert):", "",
              "| policy | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for name, s in policies.items():
        cells = [", ".join(f"{k} {v:.0%}" for k, v in s["by_category"][c]["tool_mix"].items()) or "-"
                 if c in s["by_category"] else "-" for c in cats]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def pareto_table(points: list[dict[str, Any]]) -> list[str]:
    lines = ["| point | n | accuracy | mean cost USD | on front |", "|---|---|---|---|---|"]
    for p in points:
        front = "upper bound" if p["upper_bound"] else ("yes" if p["on_front"] else "no")
        lines.append(f"| {p['label']} | {p['n']} | {p['accuracy']:.3f} | {p['cost_usd']:.5f} | {front} |")
    return lines


def generalisation_section(gen: dict[str, Any], descriptions: dict[str, str]) -> list[str]:
    lines: list[str] = []
    titles = {"unseen_pricing": "(a) Unseen pricing regime", "unseen_tool": "(b) Unseen tool set"}
    for block, title in titles.items():
        if block not in gen:
            continue
        lines += [f"### {title}", "", descriptions.get(block, ""), "",
                  "| policy | n | accuracy | Δ accuracy vs main | mean cost USD | Δ cost vs main |",
                  "|---|---|---|---|---|---|"]
        for name, s in gen[block]["policies"].items():
            da = f"{s['delta_accuracy']:+.3f}" if "delta_accuracy" in s else "-"
            dc = f"{s['delta_cost_usd']:+.5f}" if "delta_cost_usd" in s else "-"
            lines.append(f"| {name} | {s['n']} | {s['accuracy']:.3f} | {da} | {s['cost_usd']:.5f} | {dc} |")
        lines.append("")
    held = gen.get("heldout_envs", {})
    lines += ["### (c) Held-out environments vs held-out templates", ""]
    if held.get("grouping") == "train_overlap":
        splits = ("unseen_env", "seen_env_unseen_template", "seen_env_seen_template")
        lines += ["Seen/unseen is judged against the training tasks' environments and templates.", "",
                  "| policy | " + " | ".join(f"{s} (n) acc" for s in splits) + " |", "|---|---|---|---|"]
        for name, e in held.get("policies", {}).items():
            cells = [f"({e[s]['n']}) {e[s]['accuracy']:.2f}" if s in e else "-" for s in splits]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        lines.append("No training tasks were available to tell seen from unseen: results are grouped by env.")
    lines += ["", "Accuracy by environment:", ""]
    envs = sorted({env for e in held.get("policies", {}).values() for env in e["by_env"]})
    lines += ["| policy | " + " | ".join(envs) + " |", "|---|" + "---|" * len(envs)]
    for name, e in held.get("policies", {}).items():
        lines.append(f"| {name} | " + " | ".join(
            f"{e['by_env'][env]['accuracy']:.2f}" if env in e["by_env"] else "-" for env in envs) + " |")
    return lines


def write_report(summary: dict[str, Any], out_dir: Path) -> Path:
    cfg = summary["config"]
    simulated = summary["simulated_experts"]
    label = " (simulated experts)" if simulated else ""
    plot_pareto(summary["pareto"], out_dir / "pareto.png", f"Accuracy vs mean cost on held-out tasks{label}")
    lines = [
        "# Evaluation report", "",
        f"**Verdict:** {summary['verdict']['sentence']}", "",
    ]
    if summary["verdict"].get("missing"):
        lines += ["Missing for the target: " + "; ".join(summary["verdict"]["missing"]) + ".", ""]
    if simulated:
        names = ", ".join(cfg["simulated_expert_names"])
        lines += [f"> Experts are **simulated** (declared accuracy profiles, not real models): {names}. "
                  "Numbers measure routing, not model quality.", ""]
    lines += [
        (f"Utility per task: u = a·correct − (1 − a)·cost, with a = {cfg['utility_a']:g} and cost in units of "
         f"${cfg['cost_unit_usd']:g} (cost_usd / {cfg['cost_unit_usd']:g}); user utility weighs each task at its own "
         "user's weights on accuracy, cost (cents) and latency (minutes), scaled to sum to 1. Intervals: 95% BCa bootstrap "
         f"over tasks, {cfg['bootstrap_samples']} resamples, seed {cfg['seed']}. Every number below is recomputed "
         f"from `results.jsonl` by `toolorch.eval.metrics.summarize`."), "",
        "## Policies", "", *policy_table(summary["policies"]), "",
        "## Trained policy vs baselines (paired)", "",
        *paired_section(summary["paired"], summary["verdict"]["trained"]), "",
        "## Per category", "", *category_table(summary["policies"]), "",
        "## Accuracy vs cost", "", "![Pareto plot](pareto.png)", "", *pareto_table(summary["pareto"]), "",
        "## Routing (RouteLLM: PGR, APGR, CPT)", "", *routing_section(summary["routing"]), "",
        "## Routing headroom", "", *headroom_section(summary.get("headroom")), "",
        "## Generalisation", "", *generalisation_section(summary["generalisation"], cfg.get("block_descriptions", {})), "",
    ]
    if summary.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in summary["notes"]], ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

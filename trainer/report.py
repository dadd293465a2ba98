"""The evaluation report: one Markdown table comparing the models, and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pintext.trainer.evaluate import METRICS

Results = dict[str, dict[str, dict[str, float]]]


def _cell(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def results_table(results: Results) -> str:
    """Markdown: one row per (task, model), one column per metric; then STS per model."""
    lines = ["| task | model | " + " | ".join(METRICS) + " |", "|---|---|" + "---:|" * len(METRICS)]
    tasks = sorted({task for by_task in results.values() for task in by_task if task != "sts"})
    for task in tasks:
        for model, by_task in results.items():
            if task in by_task:
                lines.append(f"| {task} | {model} | " + " | ".join(_cell(by_task[task].get(m)) for m in METRICS) + " |")
    sts = [(model, by_task["sts"]["spearman"]) for model, by_task in results.items() if "sts" in by_task]
    if sts:
        lines += ["", "| model | STS-B dev Spearman |", "|---|---:|"]
        lines += [f"| {model} | {_cell(value)} |" for model, value in sts]
    return "\n".join(lines)


def plot_loss_curves(logs: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Training loss per step (and validation loss per task) for each trained model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not logs:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for model, log in logs.items():
        steps = [entry["step"] for entry in log.get("train", [])]
        axis.plot(steps, [entry["loss"] for entry in log.get("train", [])], label=f"{model} train", alpha=0.8)
        for entry_key in sorted({k for e in log.get("validation", []) for k in e if k.startswith("eval_")}):
            points = [(e["step"], e[entry_key]) for e in log["validation"] if entry_key in e]
            task = entry_key.removeprefix("eval_").removesuffix("_loss")
            axis.plot(*zip(*points), marker="o", linestyle="--", label=f"{model} validation {task}")
    axis.set_xlabel("step")
    axis.set_ylabel("loss (weighted)")
    axis.set_title("Training loss")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_metric_bars(results: Results, metric: str, path: Path) -> Path:
    """Grouped bars: one group per task, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    tasks = sorted({task for by_task in results.values() for task in by_task if task != "sts"})
    width = 0.8 / max(1, len(models))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for index, model in enumerate(models):
        values = [results[model].get(task, {}).get(metric, float("nan")) for task in tasks]
        axis.bar([t + index * width for t in range(len(tasks))], values, width, label=model)
    axis.set_xticks([t + width * (len(models) - 1) / 2 for t in range(len(tasks))], tasks)
    axis.set_ylim(0, 1)
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} per task")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(
    results: Results, out_dir: Path, *, logs: dict[str, dict[str, Any]] | None = None, notes: list[str] | None = None
) -> Path:
    """REPORT_DIR/report.md, results.json and the PNG plots; returns report.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    images = []
    if logs and plot_loss_curves(logs, out_dir / "loss_curves.png"):
        images.append(("Training loss", "loss_curves.png"))
    for metric in ("pairwise_accuracy", "recall@100", "mrr", "token_coverage"):
        name = f"{metric.replace('@', '_at_')}.png"
        plot_metric_bars(results, metric, out_dir / name)
        images.append((metric, name))
    body = ["# PinText evaluation", "", *(notes or []), "", results_table(results), ""]
    body += [f"![{title}]({name})" for title, name in images]
    path = out_dir / "report.md"
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path

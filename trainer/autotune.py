"""`pintext train` without tuning flags: pick the loss, learning rate and task weights on the validation split.

Every trial is a full training run with early stopping (`pintext.trainer.selection`), so each trial also picks its
own number of epochs. Every trial of `SEARCH_GRID` runs, whatever the clock: the amount of work is fixed (epochs are
a ceiling), so the same command on the same data gives the same model on a busy or a quiet machine. Then, when the
pairs folder has tasks besides search, the auxiliary tasks' weight is chosen the same way, with search alone
(PinText-SR) as one of the candidates — so the multitask model is never worse than the single-task one on
validation; auxiliary pairs touching a pin the search task holds out are left out of every trial
(`pintext.trainer.train.held_out_texts`), so validation cannot leak across tasks. The winner's folder becomes the
model; with `refit` (the default) it is trained once more on every split of every task for the epochs its trial
chose: the held-out splits choose the settings and are not thrown away. `budget_s` (off by default) is a guard for
a very large folder: trials that would end past it are skipped and named.

Everything tried, and why the winner won, is written to `MODEL/selection.json`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pintext.atomic import write_text
from pintext.constants import SEARCH
from pintext.trainer.train import (
    PairDataError,
    TrainConfig,
    TrainResult,
    TrialCache,
    load_pairs,
    require_enough_pairs,
    train,
)

SELECTION_FILE = "selection.json"
# (loss, learning rate), best first. The hinge is the paper's objective; in-batch negatives (MNRL) and their sum are
# the alternatives. Rates are for SparseAdam on a lexical start whose rows have norms of a few units (IDF).
SEARCH_GRID: tuple[tuple[str, float], ...] = (
    ("mnrl", 0.01),
    ("mnrl", 0.005),
    ("pintext", 0.01),
    ("pintext+mnrl", 0.01),
    ("mnrl", 0.02),
)
AUX_WEIGHTS = (0.1, 0.3, 1.0)


@dataclass
class Trial:
    name: str
    settings: dict[str, Any]
    score: float | None = None
    best_epoch: float | None = None
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def _trial_settings(config: TrainConfig) -> dict[str, Any]:
    return {"loss": config.loss, "lr": config.lr, "tasks": list(config.tasks),
            "task_weights": dict(config.task_weights)}


class Tuner:
    """Runs trials into `work_dir` and remembers the best one."""

    def __init__(self, pairs_dir: Path, work_dir: Path, budget_s: float | None,
                 on_trial: Callable[[Trial], None] | None = None) -> None:
        self.on_trial = on_trial or (lambda trial: None)
        self.pairs_dir = pairs_dir
        self.work_dir = work_dir
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.trials: list[Trial] = []
        self.best: tuple[Trial, TrainResult] | None = None
        self.last_result: TrainResult | None = None
        self.cache = TrialCache()  # the trials' shared work (vocabulary, start, packed texts, validation)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def run(self, name: str, config: TrainConfig) -> Trial:
        trial = Trial(name, _trial_settings(config))
        self.trials.append(trial)
        runs = [t for t in self.trials if t.score is not None]
        expected = max((t.seconds for t in runs), default=0.0)
        if runs and self.budget_s is not None and self.elapsed() + expected > self.budget_s:
            trial.skipped = f"time budget ({self.budget_s:.0f} s) would be exceeded"
            self.on_trial(trial)
            return trial
        started = time.perf_counter()
        result = train(self.pairs_dir, self.work_dir / name, config, show_progress=False, cache=self.cache)
        self.last_result = result
        trial.seconds = round(time.perf_counter() - started, 2)
        selection = result.selection
        trial.score = selection.get("best_validation_score")
        trial.best_epoch = selection.get("best_epoch")
        trial.validation = selection.get("best_metrics", {})
        if trial.score is not None and (self.best is None or trial.score > (self.best[0].score or float("-inf"))):
            self.best = (trial, result)
        self.on_trial(trial)
        return trial


def tune_and_train(
    pairs_dir: str | Path, out_dir: str | Path, base: TrainConfig, *, budget_s: float | None = None, refit: bool = True,
    losses: tuple[str, ...] | None = None, lrs: tuple[float, ...] | None = None, tune_weights: bool = True,
    single_task_candidate: bool = True, on_trial: Callable[[Trial], None] | None = None,
    on_chosen: Callable[[Path], None] | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Choose settings on validation, leave the chosen model in `out_dir`; returns it and the selection record.
    `single_task_candidate=False` (the user named the tasks) keeps search alone out of the final choice.
    `on_chosen(out_dir)` runs when the winner is in place and before the refit (what else is chosen on validation,
    such as the hybrid's fusion, must be chosen with a model that has not trained on validation)."""
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    work_dir = out_dir / "trials"
    shutil.rmtree(work_dir, ignore_errors=True)
    tuner = Tuner(pairs_dir, work_dir, budget_s, on_trial)
    main_tasks = [SEARCH] if SEARCH in base.tasks else list(base.tasks)
    require_enough_pairs(pairs_dir, load_pairs(pairs_dir, list(base.tasks)), list(base.tasks),
                         validation_for=main_tasks)
    grid = [(loss, lr) for loss, lr in SEARCH_GRID if (losses is None or loss in losses) and (lrs is None or lr in lrs)]
    if not grid:  # the user fixed a setting outside the grid: that one setting
        grid = [(losses[0] if losses else base.loss, lrs[0] if lrs else base.lr)]
    first_stage = replace(base, tasks=main_tasks, early_stopping=True)  # base.epochs is the ceiling
    for loss, lr in grid:
        tuner.run(f"{'+'.join(main_tasks)}-{loss}-lr{lr}", replace(first_stage, loss=loss, lr=lr))
    if tuner.best is None:
        raise PairDataError("no trial could be scored: the pairs folder needs a non-empty validation split")
    single_trial, _ = tuner.best
    auxiliary = [task for task in base.tasks if task not in main_tasks]
    if auxiliary and not tune_weights:
        chosen = tuner.best[1].config
        tuner.run("MTL", replace(chosen, tasks=list(base.tasks), task_weights=dict(base.task_weights)))
        forced = tuner.last_result
        if forced is not None:  # the user fixed the task weights: they asked for the multitask model
            tuner.best = (tuner.trials[-1], forced)
    elif auxiliary:
        chosen = tuner.best[1].config
        if not single_task_candidate:
            tuner.best = None  # the winner must train every task asked for
        for weight in AUX_WEIGHTS:
            weights = {**chosen.task_weights, **{task: weight for task in auxiliary}}
            tuner.run(f"MTL-aux{weight}", replace(chosen, tasks=list(base.tasks), task_weights=weights))
    assert tuner.best is not None
    winner, result = tuner.best
    _adopt(result.model_dir, out_dir)
    if on_chosen is not None:
        on_chosen(out_dir)
    if refit:
        epochs = max(float(winner.best_epoch or 0.0), 0.5)
        result = train(pairs_dir, out_dir, replace(result.config, refit=True, epochs=epochs), show_progress=False,
                       cache=tuner.cache)
    else:
        result = replace(result, model_dir=out_dir)
    record = {
        "budget_s": budget_s,
        "seconds": round(tuner.elapsed(), 2),
        "metric": "validation score = mean of recall@10, recall@100 and MRR on the search task (else all tasks)",
        "chosen": winner.name,
        "chosen_settings": {**winner.settings, "epochs": winner.best_epoch, "refit": refit},
        "why": _why(winner, single_trial, tuner.trials),
        "trials": [asdict(trial) for trial in tuner.trials],
    }
    write_text(out_dir / SELECTION_FILE, json.dumps(record, indent=2, default=str) + "\n")
    shutil.rmtree(work_dir, ignore_errors=True)
    return result, record


def _adopt(trial_dir: Path, out_dir: Path) -> None:
    """Make the winning trial's folder the model folder (its files replace any older model's)."""
    for item in trial_dir.iterdir():
        target = out_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(item), str(target))


def _why(winner: Trial, single: Trial, trials: list[Trial]) -> str:
    scored = sorted((t for t in trials if t.score is not None), key=lambda t: -(t.score or 0.0))
    runner_up = next((t for t in scored if t is not winner), None)
    text = f"{winner.name} had the highest validation score ({winner.score:.4f}"
    text += f" vs {runner_up.name} {runner_up.score:.4f})" if runner_up else ")"
    if winner is not single and single.score is not None:
        text += f"; the multitask model beat search alone ({single.score:.4f})"
    skipped = [t.name for t in trials if t.skipped]
    if skipped:
        text += f"; not tried for lack of time: {', '.join(skipped)}"
    return text

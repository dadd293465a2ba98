"""The trainer stage's policy, behind `pintext.train(...)` and `pintext.pairs(...)`: build pair data, train the
model (settings chosen on validation, then refit on every pair), choose the exact-match weight and the hybrid's
fusion, evaluate. torch is imported (by `pintext.trainer`) only when a model is trained or evaluated.

    import pintext

    pintext.pairs("pairs", events="events.jsonl", pins="pins.jsonl")
    model = pintext.train("pairs", "model")      # -> pintext.trainer.train.TrainResult
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pintext.api.connection import Notes, quiet
from pintext.constants import SEARCH, TASKS, VALIDATION
from pintext.errors import BadInput, PinTextError, UsageError

DEFAULT_DIM = 256
DEFAULT_LOSS = "pintext"
DEFAULT_LR = 0.01
PAIRS_ENGINES = ("duckdb", "memory", "spark")


def train(pairs: str | Path, out: str | Path, *, tasks: Sequence[str] | None = None, loss: str | None = None,
          lr: float | None = None, task_weights: str | None = None, tune: bool = True, budget: float | None = None,
          refit: bool = True, dim: int = DEFAULT_DIM, epochs: float = 10.0, batch_size: int = 256,
          sampling: str = "proportional", margin: float = 0.2, negatives: int = 32, radius: float = 0.0,
          min_count: int = 1, max_vocab: int = 200_000, seed: int = 0, float16: bool = False, threads: int = 0,
          init: str = "lexical", corpus: str | Path | None = None, early_stopping: bool = True, patience: int = 3,
          hash_unseen: bool = True, subwords: bool = True, show_progress: bool = False,
          on_trial: Callable[[Any], None] | None = None, notes: Notes = quiet) -> Any:
    """Train a model from a pairs folder into `out` (built aside, swapped in complete), choosing loss, learning rate
    and task weights on validation unless given, then refitting on every pair; `pintext train` with the same
    defaults. Returns the `TrainResult` (`.model_dir`, `.summary()`, `.selection`)."""
    from pintext.trainer.train import PairDataError

    pairs, out = Path(pairs), Path(out)
    try:
        task_list = tasks_in(pairs, ",".join(tasks) if tasks else None)
        config = train_config(",".join(task_list), loss or DEFAULT_LOSS, dim, epochs, batch_size, lr or DEFAULT_LR,
                              sampling, task_weights, margin, negatives, radius, min_count, max_vocab, seed, float16,
                              threads, init, Path(corpus) if corpus else None, early_stopping, patience, hash_unseen,
                              subwords)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        result, selection = fit(pairs, out, config, tune=tune and not (loss and lr), budget=budget, refit=refit,
                                losses=(loss,) if loss else None, lrs=(lr,) if lr else None,
                                tune_weights=task_weights is None, single_task_candidate=tasks is None,
                                show_progress=show_progress, on_trial=on_trial, notes=notes)
    except (PairDataError, FileNotFoundError, ValueError) as error:
        raise BadInput(str(error)) from None
    except RuntimeError as error:
        raise PinTextError(str(error)) from None
    result.selection = selection
    return result


def pairs(out: str | Path, *, events: str | Path | None = None, pins: str | Path | None = None,
          users: str | Path | None = None, imports: Sequence[tuple[str | Path, str]] = (), engine: str = "duckdb",
          memory_limit: str | None = None, save_weight: float = 1.0, click_weight: float = 0.5, min_count: int = 1,
          max_per_anchor: int = 50, seed: int = 0, val: float = 0.1, test: float = 0.1, strict: bool = False,
          column_map: str | None = None, log_format: str | None = None, surface: str = "search",
          action: str = "click", pins_map: str | None = None, pins_format: str | None = None,
          on_events: Callable[[int], None] | None = None, notes: Notes = quiet) -> dict:
    """Build a pairs folder: from engagement events and pins (split by anchor), or by importing (file, task) pairs
    of anchor, positive[, weight]; `pintext pairs` with the same defaults. `column_map` (and `pins_map`) read
    `events` as a click log (and `pins` as a product file) first (docs/data.md, Click logs). Returns the counts
    per task."""
    from pintext.ingest.pairs.imported import build_imported_pairs
    from pintext.ingest.pairs.rules import PairOptions
    from pintext.schemas import RecordError

    try:
        options = PairOptions(save_weight, click_weight, min_count, max_per_anchor, seed, val, test, strict)
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = Path(out)
    try:
        if imports:
            if events is not None:
                raise UsageError("use either --events (rebuilds every task) or --import/--task, not both")
            return build_imported_pairs([(Path(file), task) for file, task in imports], out, options)
        missing = [name for name, value in (("--events", events), ("--pins", pins)) if value is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)} (or use --import FILE --task NAME)")
        if column_map is not None or pins_map is not None:
            events, pins = convert_click_log(Path(str(events)), Path(str(pins)), out, column_map, log_format,
                                             surface, action, pins_map, pins_format, strict, notes)
        return event_pairs(engine, memory_limit)(Path(str(events)), Path(str(pins)), Path(users) if users else None,
                                                 out, options, on_events or (lambda _n: None))
    except RecordError as error:
        raise BadInput(str(error)) from None
    except FileNotFoundError as error:
        raise BadInput(f"no such file: {error.filename}") from None
    except IsADirectoryError as error:  # --pins/--users/--import name a file (only --events may be a folder)
        raise BadInput(f"{error.filename}: a folder, not a file") from None
    except ValueError as error:
        raise BadInput(str(error)) from None


def convert_click_log(events: Path, pins: Path, out: Path, column_map: str | None, log_format: str | None,
                      surface: str, action: str, pins_map: str | None, pins_format: str | None, strict: bool,
                      notes: Notes = quiet) -> tuple[Path, Path]:
    """A click log (and product file) as events.jsonl (pins.jsonl) in `<out>.clicklog/`."""
    from pintext.ingest.collect import clicklog
    from pintext.ingest.collect.clicklog import ClickLogError

    try:
        if column_map is None:
            raise ClickLogError("--pins-map needs --map (the click log's columns) too")
        options = clicklog.ClickLogOptions(clicklog.parse_map(column_map, clicklog.EVENT_FIELDS), surface, action,
                                           log_format)
        product_map = clicklog.parse_map(pins_map, clicklog.PIN_FIELDS, "--pins-map") if pins_map else None
        converted = clicklog.convert_click_log(events, pins, clicklog.work_folder(out), options, product_map,
                                               pins_format, strict)
    except ClickLogError as error:
        raise BadInput(str(error)) from None
    notes(converted.summary_line())
    return converted.events, converted.pins


def event_pairs(engine: str, memory_limit: str | None) -> Any:
    """The events -> pairs job of `engine` (build_pairs' signature); a missing extra is a usage error."""
    from functools import partial

    from pintext.ingest.pairs.memory import build_pairs

    if engine not in PAIRS_ENGINES:
        raise UsageError(f"--engine {engine!r}: use one of {', '.join(PAIRS_ENGINES)}")
    try:
        if engine == "memory":
            return build_pairs
        if engine == "spark":
            from pintext.ingest.pairs.spark_engine import build_pairs_spark, require_pyspark

            require_pyspark()
            return build_pairs_spark
        from pintext.ingest.pairs.duckdb_engine import build_pairs_duckdb, require_duckdb

        require_duckdb()
    except ImportError as error:
        raise UsageError(str(error)) from None
    return partial(build_pairs_duckdb, memory_limit=memory_limit)


def train_config(
    tasks: str, loss: str, dim: int, epochs: float, batch_size: int, lr: float, sampling: str,
    task_weights: str | None, margin: float, negatives: int, radius: float, min_count: int, max_vocab: int,
    seed: int, float16: bool,
    threads: int = 0, init: str = "lexical", corpus: Path | None = None, early_stopping: bool = True,
    patience: int = 3, hash_unseen: bool = True, subwords: bool = True,
):
    from pintext.trainer.train import TrainConfig, parse_task_weights

    config = TrainConfig(
        tasks=[task.strip() for task in tasks.split(",") if task.strip()],
        loss=loss, dim=dim, epochs=epochs, batch_size=batch_size, lr=lr, sampling=sampling,
        task_weights=parse_task_weights(task_weights), margin=margin, negatives=negatives,
        radius=radius if radius > 0 else None, min_count=min_count, max_vocab=max_vocab, seed=seed, float16=float16,
        threads=threads, init=init, corpus=str(corpus) if corpus else None, early_stopping=early_stopping,
        patience=patience, hash_unseen=hash_unseen, subwords=subwords,
    )
    config.validate()
    return config


def tasks_in(pairs: Path, tasks: str | None) -> list[str]:
    """The tasks asked for, or every task folder the pairs folder has."""
    if tasks:
        return [task.strip() for task in tasks.split(",") if task.strip()]
    if not pairs.is_dir():
        raise ValueError(f"{pairs}: missing (expected the folder `pintext pairs --out` writes)")
    present = [task for task in TASKS if (pairs / task).is_dir()]
    if not present:
        raise ValueError(f"{pairs}: no task folder among {', '.join(TASKS)} (build it with `pintext pairs`)")
    return present


def model_folder_lock(out: Path, notes: Notes = quiet) -> Any:
    """One `train` into a model folder at a time: a second one waits, naming the holder (a lock beside the folder,
    the same lock ingest takes per file and index)."""
    from pintext.atomic import FileLock

    lock_path = out.absolute().with_name(f".{out.name}.lock")
    return FileLock(lock_path, what="the lock of", on_wait=lambda pid: notes(
        f"waiting: pid {pid} is training into {out} (lock {lock_path})"))


def fit(pairs: Path, out: Path, config, *, tune: bool, budget: float | None, refit: bool, losses=None, lrs=None,
        tune_weights: bool = True, single_task_candidate: bool = True, show_progress: bool = True,
        on_trial: Callable[[Any], None] | None = None, notes: Notes = quiet):
    """Train (choosing settings on validation when `tune`), choose the hybrid's fusion on validation with the chosen
    model, then (with `refit`) train it again on every pair; (result, selection). The model folder is built aside
    and swapped in complete (`pintext.atomic.atomic_folder`): a failure leaves the previous one as it was."""
    from pintext.atomic import atomic_folder
    from pintext.trainer.train import relocate

    with model_folder_lock(out, notes), atomic_folder(out, "model folder") as building:
        result, selection = _fit(pairs, building, config, tune=tune, budget=budget, refit=refit, losses=losses,
                                 lrs=lrs, tune_weights=tune_weights, single_task_candidate=single_task_candidate,
                                 show_progress=show_progress, on_trial=on_trial)
        result = relocate(result, out)
    return result, selection


def _fit(pairs: Path, out: Path, config, *, tune: bool, budget: float | None, refit: bool, losses, lrs,
         tune_weights: bool, single_task_candidate: bool, show_progress: bool, on_trial: Any):
    from pintext.trainer.autotune import tune_and_train
    from pintext.trainer.train import train

    fusion: dict = {}

    def choose(model_dir: Path) -> None:
        fusion.update(choose_hybrid(pairs, model_dir, config.tasks, config.corpus))

    if tune:
        result, selection = tune_and_train(pairs, out, config, budget_s=budget, refit=refit, losses=losses, lrs=lrs,
                                           tune_weights=tune_weights, single_task_candidate=single_task_candidate,
                                           on_trial=on_trial, on_chosen=choose)
    else:
        result, selection = train(pairs, out, config, show_progress=show_progress), {}
        choose(out)
    selection.update(fusion)
    return result, selection


def choose_hybrid(pairs: Path, model_dir: Path, tasks: list[str], corpus: str | None) -> dict:
    """Choose the exact-match weight and the hybrid's fusion on the search task's validation split with the model in
    `model_dir`, save them there (match.json, hybrid.json, hybrid_selection.json); {"hybrid": fusion,
    "exact_match": weight} as chosen (without search validation pairs: the default weight, no hybrid.json)."""
    from pintext.atomic import write_text
    from pintext.encoder import Encoder
    from pintext.exact_match import DEFAULT_MATCH_WEIGHT, TRAINED_NEAREST_WORDS, ExactMatch
    from pintext.trainer.selection import choose_fusion
    from pintext.trainer.train import MAX_DISTRACTORS, load_corpus, load_pairs

    loaded = load_pairs(pairs, [task for task in tasks if task == SEARCH])
    if SEARCH not in loaded or len(loaded[SEARCH][VALIDATION]) == 0:
        # nothing to choose on: the default signal and fusion
        match = ExactMatch(DEFAULT_MATCH_WEIGHT, TRAINED_NEAREST_WORDS)
        match.save(model_dir)
        return {"exact_match": match.to_dict()}
    pins = load_corpus(pairs, corpus, rejected=None)  # training dead-lettered its bad lines
    fusion, match, record = choose_fusion(loaded, Encoder.load(model_dir), distractors=pins[:MAX_DISTRACTORS])
    fusion.save(model_dir)
    match.save(model_dir)
    write_text(model_dir / "hybrid_selection.json", json.dumps(record, indent=2) + "\n")
    return {"hybrid": record["chosen"], "exact_match": record["chosen_match"]}


def model_name(model_dir: Path) -> str:
    from pintext.trainer.train import TRAIN_CONFIG_FILE

    config_file = model_dir / TRAIN_CONFIG_FILE
    if config_file.is_file():
        return json.loads(config_file.read_text(encoding="utf-8")).get("model", model_dir.name)
    return model_dir.name


def run_eval(
    model_dirs: list[Path], pairs: Path, *, split: str, bm25: bool, random: bool, out: Path | None,
    sts: Path | None, tasks: list[str] | None = None,
) -> dict:
    """Evaluate the models (the first one also gives the random baseline its shape); write the report."""
    from pintext.encoder import Encoder
    from pintext.trainer.evaluate import default_sts_path, evaluate_models, random_encoder
    from pintext.trainer.report import write_report
    from pintext.trainer.train import TRAIN_LOG_FILE, load_pairs

    available = [task for task in (tasks or TASKS) if (pairs / task).is_dir()]
    if not available:
        raise FileNotFoundError(f"{pairs}: no task folder among {list(TASKS)}")
    pair_data = load_pairs(pairs, available)
    encoders = {}
    for model_dir in model_dirs:
        name = model_name(model_dir)
        encoders[name if name not in encoders else f"{name} ({model_dir})"] = Encoder.load(model_dir)
    if random:
        encoders["random"] = random_encoder(next(iter(encoders.values())))
    sts_path = sts or default_sts_path()
    results = evaluate_models(pair_data, encoders, split=split, bm25=bm25, sts_path=sts_path)
    if out is not None:
        logs = {
            model_name(d): json.loads((d / TRAIN_LOG_FILE).read_text())
            for d in model_dirs
            if (d / TRAIN_LOG_FILE).is_file()
        }
        notes = [
            f"Pairs: `{pairs}`, split `{split}`. Candidate pool per task: all distinct positives of the task "
            "(every split), by positive_id. Ties rank pessimistically.",
            f"STS: `{sts_path}`" + ("" if sts_path.is_file() else " (not found: skipped)") + ".",
        ]
        write_report(results, out, logs=logs, notes=notes)
    return results

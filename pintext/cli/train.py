"""CLI commands: train, eval, train-eval (the trainer stage; torch is imported inside the commands only)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from pintext.cli.disk import reports_disk_errors
from pintext.cli.errors import FAILURE, USAGE, fail
from pintext.constants import SEARCH, TASKS, TEST, VALIDATION

DEFAULT_DIM = 256
DEFAULT_LOSS = "pintext"
DEFAULT_LR = 0.01
TASKS_HELP = (f"Comma-separated tasks: {','.join(TASKS)}. '{SEARCH}' alone trains PinText-SR, "
              "all three PinText-MTL.")


def _config(
    tasks: str, loss: str, dim: int, epochs: float, batch_size: int, lr: float, sampling: str,
    task_weights: Optional[str], margin: float, negatives: int, radius: float, min_count: int, max_vocab: int,
    seed: int, float16: bool,
    threads: int = 0, init: str = "lexical", corpus: Optional[Path] = None, early_stopping: bool = True,
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


def _tasks_in(pairs: Path, tasks: Optional[str]) -> list[str]:
    """The tasks asked for, or every task folder the pairs folder has."""
    if tasks:
        return [task.strip() for task in tasks.split(",") if task.strip()]
    if not pairs.is_dir():
        raise ValueError(f"{pairs}: missing (expected the folder `pintext pairs --out` writes)")
    present = [task for task in TASKS if (pairs / task).is_dir()]
    if not present:
        raise ValueError(f"{pairs}: no task folder among {', '.join(TASKS)} (build it with `pintext pairs`)")
    return present


def model_folder_lock(out: Path) -> Any:
    """One `train` into a model folder at a time: a second one waits, naming the holder (a lock beside the folder,
    the same lock ingest takes per file and index)."""
    from pintext.atomic import FileLock

    lock_path = out.absolute().with_name(f".{out.name}.lock")
    return FileLock(lock_path, what="the lock of", on_wait=lambda pid: typer.echo(
        f"waiting: pid {pid} is training into {out} (lock {lock_path})", err=True))


def fit(pairs: Path, out: Path, config, *, tune: bool, budget: float | None, refit: bool, losses=None, lrs=None,
        tune_weights: bool = True, single_task_candidate: bool = True, show_progress: bool = True):
    """Train (choosing settings on validation when `tune`), choose the hybrid's fusion on validation with the chosen
    model, then (with `refit`) train it again on every pair; (result, selection). The model folder is built aside
    and swapped in complete (`pintext.atomic.atomic_folder`): a failure leaves the previous one as it was."""
    from pintext.atomic import atomic_folder
    from pintext.trainer.train import relocate

    with model_folder_lock(out), atomic_folder(out, "model folder") as building:
        result, selection = _fit(pairs, building, config, tune=tune, budget=budget, refit=refit, losses=losses,
                                 lrs=lrs, tune_weights=tune_weights, single_task_candidate=single_task_candidate,
                                 show_progress=show_progress)
        result = relocate(result, out)
    return result, selection


def _fit(pairs: Path, out: Path, config, *, tune: bool, budget: float | None, refit: bool, losses, lrs,
         tune_weights: bool, single_task_candidate: bool, show_progress: bool):
    from pintext.trainer.autotune import tune_and_train
    from pintext.trainer.train import train

    fusion: dict = {}

    def choose(model_dir: Path) -> None:
        fusion.update(choose_hybrid(pairs, model_dir, config.tasks, config.corpus))

    if tune:
        result, selection = tune_and_train(pairs, out, config, budget_s=budget, refit=refit, losses=losses, lrs=lrs,
                                           tune_weights=tune_weights, single_task_candidate=single_task_candidate,
                                           on_trial=_print_trial if show_progress else None, on_chosen=choose)
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
    from pintext.exact_match import DEFAULT_MATCH_WEIGHT, ExactMatch
    from pintext.trainer.selection import choose_fusion
    from pintext.trainer.train import MAX_DISTRACTORS, load_corpus, load_pairs

    loaded = load_pairs(pairs, [task for task in tasks if task == SEARCH])
    if SEARCH not in loaded or len(loaded[SEARCH][VALIDATION]) == 0:
        match = ExactMatch(DEFAULT_MATCH_WEIGHT)  # nothing to choose on: the default signal, RRF for the hybrid
        match.save(model_dir)
        return {"exact_match": match.to_dict()}
    pins = load_corpus(pairs, corpus, rejected=None)  # training dead-lettered its bad lines
    fusion, match, record = choose_fusion(loaded, Encoder.load(model_dir), distractors=pins[:MAX_DISTRACTORS])
    fusion.save(model_dir)
    match.save(model_dir)
    write_text(model_dir / "hybrid_selection.json", json.dumps(record, indent=2) + "\n")
    return {"hybrid": record["chosen"], "exact_match": record["chosen_match"]}


def _print_trial(trial) -> None:
    """One line on stderr per trial, so a long choice on validation shows its progress."""
    from rich.console import Console

    if trial.skipped:
        line = f"[dim]trial {trial.name}: skipped ({trial.skipped})[/]"
    elif trial.score is None:
        line = f"[dim]trial {trial.name}: no validation score ({trial.seconds:.0f} s)[/]"
    else:
        line = (f"trial [bold]{trial.name}[/]: validation score {trial.score:.4f} at epoch {trial.best_epoch:g} "
                f"({trial.seconds:.0f} s)")
    Console(stderr=True).print(line, highlight=False)


def _print_train_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PinText-{result.config.name} trained", show_header=False)
    for key, value in result.summary().items():
        table.add_row(key, str(value))
    for task, record in result.coverage.items():
        test = record[TEST]
        table.add_row(f"{task} test coverage", f"tokens {test['token_share']:.3f}, texts {test['text_share']:.3f}")
    Console().print(table)


def _print_results(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from pintext.trainer.evaluate import METRICS

    headers = {"pairwise_accuracy": "acc", "recall@10": "R@10", "recall@100": "R@100", "mrr": "MRR",
               "token_coverage": "tok cov", "text_coverage": "text cov"}
    table = Table(title="PinText evaluation")
    table.add_column("task", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for metric in METRICS:
        table.add_column(headers[metric], justify="right", no_wrap=True)
    tasks = sorted({task for by_task in results.values() for task in by_task if task != "sts"})
    for task in tasks:
        for model, by_task in results.items():
            if task in by_task:
                values = (by_task[task][m] for m in METRICS)
                table.add_row(task, model, *("—" if v != v else f"{v:.3f}" for v in values))  # v != v: NaN
    Console().print(table)
    for model, by_task in results.items():
        if "sts" in by_task:
            Console().print(f"{model}: STS-B dev Spearman {by_task['sts']['spearman']:.3f}")


def _model_name(model_dir: Path) -> str:
    from pintext.trainer.train import TRAIN_CONFIG_FILE

    config_file = model_dir / TRAIN_CONFIG_FILE
    if config_file.is_file():
        return json.loads(config_file.read_text(encoding="utf-8")).get("model", model_dir.name)
    return model_dir.name


def run_eval(
    model_dirs: list[Path], pairs: Path, *, split: str, bm25: bool, random: bool, out: Optional[Path],
    sts: Optional[Path], tasks: Optional[list[str]] = None,
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
        name = _model_name(model_dir)
        encoders[name if name not in encoders else f"{name} ({model_dir})"] = Encoder.load(model_dir)
    if random:
        encoders["random"] = random_encoder(next(iter(encoders.values())))
    sts_path = sts or default_sts_path()
    results = evaluate_models(pair_data, encoders, split=split, bm25=bm25, sts_path=sts_path)
    if out is not None:
        logs = {
            _model_name(d): json.loads((d / TRAIN_LOG_FILE).read_text())
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""

    @app.command("train")
    @reports_disk_errors
    def train_command(
        pairs: Path = typer.Option(..., "--pairs",
                                   help="Pairs folder from `pintext pairs` (DIR/<task>/ DatasetDicts)."),
        out: Path = typer.Option(..., "--out", help="Model folder to write (SentenceTransformer + runtime/)."),
        tasks: Optional[str] = typer.Option(None, help=TASKS_HELP + " Default: every task in the pairs folder."),
        loss: Optional[str] = typer.Option(None, help="pintext (the paper's hinge), mnrl (in-batch negatives) or "
                                           "pintext+mnrl. Default: chosen on validation."),
        dim: int = typer.Option(DEFAULT_DIM, help="Embedding dimension."),
        epochs: float = typer.Option(10.0, help="Most epochs; early stopping on validation decides."),
        batch_size: int = typer.Option(256, help="Pairs per batch (one task per batch)."),
        lr: Optional[float] = typer.Option(None, help="Learning rate (AdamW, linear decay). "
                                           "Default: chosen on validation."),
        sampling: str = typer.Option("proportional", help="Which task each batch comes from: "
                                     "proportional or round-robin."),
        task_weights: Optional[str] = typer.Option(None, help="Loss weight per task, e.g. search=1,related=0.3 "
                                                   "(fixes them; default: chosen on validation)."),
        tune: bool = typer.Option(True, "--tune/--no-tune", help="Choose loss, learning rate and task weights on the "
                                  "validation split; every candidate runs (off: one run with the given settings)."),
        budget: Optional[float] = typer.Option(None, help="Seconds the choice may take (default: no limit, every "
                                               "candidate runs; with a limit the first trial always runs)."),
        refit: bool = typer.Option(True, "--refit/--no-refit", help="After choosing, train the chosen settings once "
                                   "more on every pair of every split (off: keep the chosen trial's model)."),
        margin: float = typer.Option(0.2, help="Hinge margin on cosine (--loss pintext)."),
        negatives: int = typer.Option(32, help="Background pairs sampled per positive pair (--loss pintext)."),
        radius: float = typer.Option(0.0, help="Norm bound of the word vectors; 0 (default) disables the projection."),
        min_count: int = typer.Option(1, help="Minimum word count to enter the vocabulary."),
        max_vocab: int = typer.Option(200_000, help="Maximum vocabulary size (unknown token included)."),
        seed: int = typer.Option(0, help="Random seed."),
        float16: bool = typer.Option(False, "--float16", help="Store the runtime table as float16."),
        threads: int = typer.Option(0, help="torch CPU threads (0 = all cores; 1 is faster on a busy shared machine)."),
        init: str = typer.Option("lexical", help="Start of the word table: lexical (IDF-scaled random directions) "
                                 "or random."),
        corpus: Optional[Path] = typer.Option(None, "--corpus", help="Pins JSONL whose words join the vocabulary "
                                              "and IDF (default: PAIRS/pins.jsonl)."),
        early_stopping: bool = typer.Option(True, "--early-stopping/--no-early-stopping",
                                            help="Score validation every half epoch and keep the best table."),
        patience: int = typer.Option(3, help="Validation scores without gain before training stops."),
        hash_unseen: bool = typer.Option(True, "--hash-unseen/--no-hash-unseen",
                                         help="Give words the vocabulary lacks a hashed vector at serving time "
                                         "(off: they are ignored)."),
        subwords: bool = typer.Option(True, "--subwords/--no-subwords",
                                      help="Learn character n-gram vectors beside the words, so a misspelled or "
                                      "unseen word gets a vector from its pieces (replaces --hash-unseen)."),
        json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Train PinText (one shared word table, per-task weighted losses), choosing its settings on validation."""
        try:
            task_list = _tasks_in(pairs, tasks)
            config = _config(",".join(task_list), loss or DEFAULT_LOSS, dim, epochs, batch_size, lr or DEFAULT_LR,
                             sampling, task_weights, margin, negatives, radius, min_count, max_vocab, seed, float16,
                             threads, init, corpus, early_stopping, patience, hash_unseen, subwords)
        except ValueError as error:
            fail(str(error), USAGE)
        from pintext.trainer.train import PairDataError

        try:
            result, selection = fit(pairs, out, config, tune=tune and not (loss and lr), budget=budget, refit=refit,
                                    losses=(loss,) if loss else None, lrs=(lr,) if lr else None,
                                    tune_weights=task_weights is None, single_task_candidate=tasks is None,
                                    show_progress=not json_output)
        except (PairDataError, FileNotFoundError, ValueError) as error:
            fail(str(error), USAGE)
        except RuntimeError as error:
            fail(str(error), FAILURE)
        if json_output:
            typer.echo(json.dumps({**result.summary(), "coverage": result.coverage, "selection": selection}, indent=2))
        else:
            _print_train_result(result)
            if selection.get("why"):
                tried = sum(1 for trial in selection.get("trials", []) if trial.get("score") is not None)
                typer.echo(f"chosen on validation ({tried} trials, {selection.get('seconds', 0):.0f} s): "
                           f"{selection['why']} (details: {out / 'selection.json'})")

    @app.command("eval")
    @reports_disk_errors
    def eval_command(
        model: Path = typer.Option(..., "--model", help="Model folder (its runtime/ is what gets evaluated)."),
        pairs: Path = typer.Option(..., "--pairs", help="Pairs folder from `pintext pairs`."),
        split: str = typer.Option(TEST, help=f"Split to evaluate: {TEST} or {VALIDATION}."),
        baseline: list[Path] = typer.Option([], "--baseline", help="More model folders to compare (repeatable)."),
        bm25: bool = typer.Option(False, "--bm25", help="Add BM25 (bm25s) over the same candidate pool."),
        random: bool = typer.Option(False, "--random", help="Add a random-initialized model with the same vocabulary."),
        out: Optional[Path] = typer.Option(None, "--out", help="Report folder: report.md, results.json, PNG plots."),
        sts: Optional[Path] = typer.Option(None, "--sts",
                                           help="STS Benchmark TSV (default: $PINTEXT_STS_DIR/sts-dev.csv)."),
        json_output: bool = typer.Option(False, "--json", help="Print {model: {task: {metric: value}}} as JSON."),
    ) -> None:
        """Evaluate models per task: pairwise accuracy, recall@10/100, MRR, word coverage, STS Spearman."""
        from pintext.encoder import RuntimeArtifactError
        from pintext.trainer.train import PairDataError

        try:
            results = run_eval([model, *baseline], pairs, split=split, bm25=bm25, random=random, out=out, sts=sts)
        except (PairDataError, RuntimeArtifactError, FileNotFoundError, ValueError) as error:
            fail(str(error), USAGE)
        if json_output:
            typer.echo(json.dumps(results, indent=2))
        else:
            _print_results(results)
            if out is not None:
                typer.echo(f"report: {out / 'report.md'}")

    @app.command("train-eval")
    @reports_disk_errors
    def train_eval_command(
        pairs: Path = typer.Option(..., "--pairs", help="Pairs folder from `pintext pairs`."),
        out: Path = typer.Option(..., "--out", help="Folder for SR/, MTL/ and report/."),
        epochs: float = typer.Option(10.0, help="Most epochs for both models (early stopping decides)."),
        dim: int = typer.Option(DEFAULT_DIM, help="Embedding dimension."),
        batch_size: int = typer.Option(256, help="Pairs per batch."),
        loss: Optional[str] = typer.Option(None, help="pintext, mnrl or pintext+mnrl (default: chosen on validation)."),
        task_weights: Optional[str] = typer.Option(None, help="MTL loss weight per task "
                                                   "(default: chosen on validation)."),
        tune: bool = typer.Option(True, "--tune/--no-tune", help="Choose settings on validation (as `pintext train`)."),
        budget: Optional[float] = typer.Option(None, help="Seconds each model's choice may take (default: no "
                                               "limit)."),
        seed: int = typer.Option(0, help="Random seed."),
        threads: int = typer.Option(0, help="torch CPU threads (0 = all cores)."),
        json_output: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
    ) -> None:
        """One command: train PinText-SR and PinText-MTL, evaluate them with BM25 and a random model, write the
        report."""
        from pintext.trainer.train import PairDataError, TrainConfig, parse_task_weights

        try:
            base = TrainConfig(tasks=_tasks_in(pairs, None), dim=dim, epochs=epochs, batch_size=batch_size,
                               loss=loss or DEFAULT_LOSS, seed=seed, threads=threads,
                               task_weights=parse_task_weights(task_weights))
            base.validate()
            options: dict[str, Any] = dict(tune=tune, budget=budget, refit=False, losses=(loss,) if loss else None,
                           show_progress=not json_output)
            single, _ = fit(pairs, out / "SR", replace(base, tasks=[SEARCH]), **options)
            # MTL: every task, its weights chosen on validation unless given; search alone is not a candidate here.
            multi, _ = fit(pairs, out / "MTL", base, tune_weights=task_weights is None, single_task_candidate=False,
                           **options)
            results = run_eval([multi.model_dir, single.model_dir], pairs, split=TEST, bm25=True, random=True,
                               out=out / "report", sts=None)
        except (PairDataError, FileNotFoundError, ValueError) as error:
            fail(str(error), USAGE)
        except RuntimeError as error:
            fail(str(error), FAILURE)
        speeds = {r.config.name: r.summary() for r in (single, multi)}
        from pintext.atomic import write_text

        write_text(out / "report" / "training.json", json.dumps(speeds, indent=2) + "\n")
        if json_output:
            typer.echo(json.dumps({"training": speeds, "results": results}, indent=2))
        else:
            _print_train_result(single)
            _print_train_result(multi)
            _print_results(results)
            typer.echo(f"report: {out / 'report' / 'report.md'}")

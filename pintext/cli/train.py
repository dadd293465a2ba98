"""CLI commands: train, eval, train-eval (the trainer stage; torch is imported inside the commands only)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from pintext.api.training import DEFAULT_DIM, run_eval
from pintext.cli.disk import reports_disk_errors
from pintext.cli.errors import FAILURE, USAGE, fail, fail_with
from pintext.constants import SEARCH, TASKS, TEST, VALIDATION

TASKS_HELP = (f"Comma-separated tasks: {','.join(TASKS)}. '{SEARCH}' alone trains PinText-SR, "
              "all three PinText-MTL.")


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
        from pintext.api.training import train
        from pintext.cli.options import cli_notes
        from pintext.errors import PinTextError

        try:
            result = train(pairs, out, tasks=tasks.split(",") if tasks else None, loss=loss, lr=lr,
                           task_weights=task_weights, tune=tune, budget=budget, refit=refit, dim=dim, epochs=epochs,
                           batch_size=batch_size, sampling=sampling, margin=margin, negatives=negatives,
                           radius=radius, min_count=min_count, max_vocab=max_vocab, seed=seed, float16=float16,
                           threads=threads, init=init, corpus=corpus, early_stopping=early_stopping,
                           patience=patience, hash_unseen=hash_unseen, subwords=subwords,
                           show_progress=not json_output, on_trial=None if json_output else _print_trial,
                           notes=cli_notes)
        except PinTextError as error:
            fail_with(error)
        selection = result.selection
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
        from pintext.api.training import DEFAULT_LOSS, fit, tasks_in
        from pintext.trainer.train import PairDataError, TrainConfig, parse_task_weights

        try:
            base = TrainConfig(tasks=tasks_in(pairs, None), dim=dim, epochs=epochs, batch_size=batch_size,
                               loss=loss or DEFAULT_LOSS, seed=seed, threads=threads,
                               task_weights=parse_task_weights(task_weights))
            base.validate()
            options: dict[str, Any] = dict(tune=tune, budget=budget, refit=False, losses=(loss,) if loss else None,
                                           show_progress=not json_output,
                                           on_trial=None if json_output else _print_trial)
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

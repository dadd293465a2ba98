"""CLI commands: train, eval, train-eval (the trainer stage; torch is imported inside the commands only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

TASKS_HELP = "Comma-separated tasks: search,related,homefeed. 'search' alone trains PinText-SR, all three PinText-MTL."


def _config(
    tasks: str, loss: str, dim: int, epochs: float, batch_size: int, lr: float, sampling: str, task_weights: Optional[str],
    margin: float, negatives: int, radius: float, min_count: int, max_vocab: int, seed: int, float16: bool,
    threads: int = 0,
):
    from pintext.trainer.train import TrainConfig, parse_task_weights

    config = TrainConfig(
        tasks=[task.strip() for task in tasks.split(",") if task.strip()],
        loss=loss, dim=dim, epochs=epochs, batch_size=batch_size, lr=lr, sampling=sampling,
        task_weights=parse_task_weights(task_weights), margin=margin, negatives=negatives,
        radius=radius if radius > 0 else None, min_count=min_count, max_vocab=max_vocab, seed=seed, float16=float16,
        threads=threads,
    )
    config.validate()
    return config


def _fail(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # soft_wrap: keep paths whole for copy-paste; escape: messages quote fields like ['positive'].
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code=2)


def _print_train_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PinText-{result.config.name} trained", show_header=False)
    for key, value in result.summary().items():
        table.add_row(key, str(value))
    for task, record in result.coverage.items():
        test = record["test"]
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
    from pintext.trainer.synthetic import TASKS
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
            _model_name(d): json.loads((d / TRAIN_LOG_FILE).read_text()) for d in model_dirs if (d / TRAIN_LOG_FILE).is_file()
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
    def train_command(
        pairs: Path = typer.Option(..., "--pairs", help="Pairs folder from `pintext pairs` (DIR/<task>/ DatasetDicts)."),
        out: Path = typer.Option(..., "--out", help="Model folder to write (SentenceTransformer + runtime/)."),
        tasks: str = typer.Option("search,related,homefeed", help=TASKS_HELP),
        loss: str = typer.Option("pintext", help="pintext (hinge on cosine vs sampled background pairs) or mnrl."),
        dim: int = typer.Option(64, help="Embedding dimension."),
        epochs: float = typer.Option(3.0, help="Training epochs."),
        batch_size: int = typer.Option(256, help="Pairs per batch (one task per batch)."),
        lr: float = typer.Option(0.05, help="Learning rate (AdamW, linear decay)."),
        sampling: str = typer.Option("proportional", help="Which task each batch comes from: proportional or round-robin."),
        task_weights: Optional[str] = typer.Option(None, help="Loss weight per task, e.g. search=1,related=0.3,homefeed=0.3."),
        tune_weights: bool = typer.Option(False, "--tune-weights", help="Choose the auxiliary weight on the validation split."),
        margin: float = typer.Option(0.2, help="Hinge margin on cosine (--loss pintext)."),
        negatives: int = typer.Option(32, help="Background pairs sampled per positive pair (--loss pintext)."),
        radius: float = typer.Option(1.0, help="Norm bound of the word vectors; 0 disables the projection."),
        min_count: int = typer.Option(2, help="Minimum word count to enter the vocabulary."),
        max_vocab: int = typer.Option(200_000, help="Maximum vocabulary size (unknown token included)."),
        seed: int = typer.Option(0, help="Random seed."),
        float16: bool = typer.Option(False, "--float16", help="Store the runtime table as float16."),
        threads: int = typer.Option(0, help="torch CPU threads (0 = all cores; 1 is faster on a busy shared machine)."),
        json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Train PinText (one shared word table, per-task weighted losses) and export its runtime."""
        try:
            config = _config(tasks, loss, dim, epochs, batch_size, lr, sampling, task_weights, margin, negatives,
                             radius, min_count, max_vocab, seed, float16, threads)
        except ValueError as error:
            _fail(str(error))
        from pintext.trainer.train import PairDataError, train, tune_task_weights

        try:
            if tune_weights and len(config.tasks) > 1:
                config.task_weights, trials = tune_task_weights(pairs, out / "tuning", config)
                (out / "tuning" / "trials.json").write_text(json.dumps(trials, indent=2) + "\n")
            result = train(pairs, out, config, show_progress=not json_output)
        except (PairDataError, FileNotFoundError) as error:
            _fail(str(error))
        if json_output:
            typer.echo(json.dumps({**result.summary(), "coverage": result.coverage}, indent=2))
        else:
            _print_train_result(result)

    @app.command("eval")
    def eval_command(
        model: Path = typer.Option(..., "--model", help="Model folder (its runtime/ is what gets evaluated)."),
        pairs: Path = typer.Option(..., "--pairs", help="Pairs folder from `pintext pairs`."),
        split: str = typer.Option("test", help="Split to evaluate: test or validation."),
        baseline: list[Path] = typer.Option([], "--baseline", help="More model folders to compare (repeatable)."),
        bm25: bool = typer.Option(False, "--bm25", help="Add BM25 (bm25s) over the same candidate pool."),
        random: bool = typer.Option(False, "--random", help="Add a random-initialized model with the same vocabulary."),
        out: Optional[Path] = typer.Option(None, "--out", help="Report folder: report.md, results.json, PNG plots."),
        sts: Optional[Path] = typer.Option(None, "--sts", help="STS Benchmark TSV (default: $PINTEXT_STS_DIR/sts-dev.csv)."),
        json_output: bool = typer.Option(False, "--json", help="Print {model: {task: {metric: value}}} as JSON."),
    ) -> None:
        """Evaluate models per task: pairwise accuracy, recall@10/100, MRR, word coverage, STS Spearman."""
        from pintext.encoder import RuntimeArtifactError
        from pintext.trainer.train import PairDataError

        try:
            results = run_eval([model, *baseline], pairs, split=split, bm25=bm25, random=random, out=out, sts=sts)
        except (PairDataError, RuntimeArtifactError, FileNotFoundError, ValueError) as error:
            _fail(str(error))
        if json_output:
            typer.echo(json.dumps(results, indent=2))
        else:
            _print_results(results)
            if out is not None:
                typer.echo(f"report: {out / 'report.md'}")

    @app.command("train-eval")
    def train_eval_command(
        pairs: Path = typer.Option(..., "--pairs", help="Pairs folder from `pintext pairs`."),
        out: Path = typer.Option(..., "--out", help="Folder for SR/, MTL/ and report/."),
        epochs: float = typer.Option(3.0, help="Training epochs for both models."),
        dim: int = typer.Option(64, help="Embedding dimension."),
        batch_size: int = typer.Option(256, help="Pairs per batch."),
        loss: str = typer.Option("pintext", help="pintext or mnrl."),
        task_weights: Optional[str] = typer.Option(None, help="MTL loss weight per task."),
        tune_weights: bool = typer.Option(False, "--tune-weights", help="Choose MTL's auxiliary weight on validation."),
        seed: int = typer.Option(0, help="Random seed."),
        threads: int = typer.Option(0, help="torch CPU threads (0 = all cores)."),
        json_output: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
    ) -> None:
        """One command: train PinText-SR and PinText-MTL, evaluate them with BM25 and a random model, write the report."""
        from pintext.trainer.train import PairDataError, TrainConfig, parse_task_weights, train, tune_task_weights

        try:
            base = TrainConfig(dim=dim, epochs=epochs, batch_size=batch_size, loss=loss, seed=seed, threads=threads,
                               task_weights=parse_task_weights(task_weights))
            base.validate()
            single = train(pairs, out / "SR", TrainConfig(**{**base.__dict__, "tasks": ["search"]}), show_progress=not json_output)
            if tune_weights:
                base.task_weights, trials = tune_task_weights(pairs, out / "tuning", base)
                (out / "tuning" / "trials.json").write_text(json.dumps(trials, indent=2) + "\n")
            multi = train(pairs, out / "MTL", base, show_progress=not json_output)
            results = run_eval([multi.model_dir, single.model_dir], pairs, split="test", bm25=True, random=True,
                               out=out / "report", sts=None)
        except (PairDataError, FileNotFoundError, ValueError) as error:
            _fail(str(error))
        speeds = {r.config.name: r.summary() for r in (single, multi)}
        (out / "report" / "training.json").write_text(json.dumps(speeds, indent=2) + "\n")
        if json_output:
            typer.echo(json.dumps({"training": speeds, "results": results}, indent=2))
        else:
            _print_train_result(single)
            _print_train_result(multi)
            _print_results(results)
            typer.echo(f"report: {out / 'report' / 'report.md'}")

"""Multitask training: ONE SentenceTransformerTrainer, one shared word table, one (weighted) loss per task.

`--tasks search` trains the single-task model ("SR"), all tasks the multitask one ("MTL"). Each task's
training split is one dataset of a DatasetDict, and the trainer's multi-dataset batch sampler decides which
task each batch comes from (proportional to size, or round-robin); each batch goes through its own task's
loss, scaled by the task weight. The auxiliary tasks are down-weighted by default (search=1, others=0.3):
plain proportional mixing let a weaker auxiliary task pull the main task down in our earlier measurements.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pintext.constants import ANCHOR, HOMEFEED, POSITIVE, RELATED, SEARCH, SPLITS, TASKS, TRAIN, VALIDATION

DEFAULT_TASK_WEIGHTS = {SEARCH: 1.0, RELATED: 0.3, HOMEFEED: 0.3}
TRAIN_CONFIG_FILE = "pintext_train.json"
# The names of pintext.trainer.losses.LOSSES, here so that checking a config needs no torch (a test keeps them equal).
LOSS_NAMES = ("pintext", "mnrl", "pintext+mnrl")
TRAIN_LOG_FILE = "training_log.json"


class PairDataError(ValueError):
    """The pairs folder does not follow the `pintext pairs` contract (NOTES.md)."""


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved as MODEL/pintext_train.json."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    loss: str = "pintext"
    dim: int = 256
    epochs: float = 10.0  # a ceiling when early stopping is on
    batch_size: int = 256
    lr: float = 0.01
    sampling: str = "proportional"
    task_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_WEIGHTS))
    margin: float = 0.2
    negatives: int = 32
    radius: float | None = None  # a norm bound would flatten the lexical start's IDF row norms
    min_count: int = 1
    init: str = "lexical"  # pintext.trainer.init: IDF-scaled random directions, or small random rows
    corpus: str | None = None  # pins JSONL whose words join the vocabulary and the IDF (default: PAIRS/pins.jsonl)
    early_stopping: bool = True  # score validation every half epoch, keep the best table
    patience: int = 3
    refit: bool = False  # train on train + validation (no early stopping: the epochs were chosen before)
    hash_unseen: bool = True  # unseen words get hashed vectors at serving time (pintext.encoder.HashedWords)
    max_vocab: int = 200_000
    seed: int = 0
    float16: bool = False
    threads: int = 0  # torch CPU threads; 0 = all cores

    def validate(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"--tasks must be a non-empty subset of {','.join(TASKS)}; unknown: {unknown}")
        if self.sampling not in ("proportional", "round-robin"):
            raise ValueError(f"--sampling must be 'proportional' or 'round-robin', got {self.sampling!r}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"--loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        if self.init not in ("lexical", "random"):
            raise ValueError(f"--init must be 'lexical' or 'random', got {self.init!r}")
        if self.dim < 1 or self.batch_size < 2 or self.epochs <= 0 or self.lr <= 0:
            raise ValueError("need --dim >= 1, --batch-size >= 2, --epochs > 0 and --lr > 0")

    def weight_of(self, task: str) -> float:
        return float(self.task_weights.get(task, 1.0))

    @property
    def name(self) -> str:
        return "SR" if self.tasks == [SEARCH] else "MTL" if set(self.tasks) == set(TASKS) else "+".join(self.tasks)


def parse_task_weights(text: str | None) -> dict[str, float]:
    """'search=1,related=0.3' -> {'search': 1.0, 'related': 0.3}; unnamed tasks keep the defaults."""
    weights = dict(DEFAULT_TASK_WEIGHTS)
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        task, sep, value = item.partition("=")
        if not sep or task.strip() not in TASKS:
            raise ValueError(f"--task-weights: expected task=number with task in {TASKS}, got {item!r}")
        try:
            weights[task.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--task-weights: {item!r}: weight is not a number") from None
    return weights


def load_pairs(pairs_dir: str | Path, tasks: list[str]):
    """{task: DatasetDict} from `pairs_dir/<task>/`, checked against the pairs contract."""
    from datasets import DatasetDict, load_from_disk

    pairs_dir = Path(pairs_dir)
    loaded: dict[str, DatasetDict] = {}
    for task in tasks:
        folder = pairs_dir / task
        if not folder.is_dir():
            raise PairDataError(f"{folder}: missing (expected the `pintext pairs` DatasetDict for task {task!r})")
        data = load_from_disk(str(folder))
        if not isinstance(data, DatasetDict):
            raise PairDataError(f"{folder}: is a single Dataset, expected a DatasetDict with splits {SPLITS}")
        for split in SPLITS:
            if split not in data:
                raise PairDataError(f"{folder}: split {split!r} is missing (has {sorted(data)})")
            missing = [column for column in (ANCHOR, POSITIVE) if column not in data[split].column_names]
            if missing:
                raise PairDataError(f"{folder}/{split}: field(s) {missing} missing (has {data[split].column_names})")
        loaded[task] = data
    return loaded


def pair_texts(pairs: dict, split: str = TRAIN):
    """Every anchor and positive text of a split, over all given tasks (the vocabulary's source)."""
    for data in pairs.values():
        yield from data[split][ANCHOR]
        yield from data[split][POSITIVE]


CORPUS_REJECTED_FILE = "corpus.rejected.jsonl"
MAX_DISTRACTORS = 100_000  # corpus texts added to each validation pool (bounded: validation runs every half epoch)


def load_corpus(pairs_dir: str | Path, corpus: str | None, rejected: Path | None) -> list[dict]:
    """The pins corpus (`corpus`, else PAIRS/pins.jsonl when present): its words join the vocabulary and the IDF,
    so a pin's words are known even when no training pair uses them, and its pins are validation's distractors.
    Bad lines go to `rejected` (kept only when there are some); None: a later read, training reported them."""
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.readers import ReportedElsewhere, read_records
    from pintext.schemas import pin_text, validate_pin

    path = Path(corpus) if corpus else Path(pairs_dir) / "pins.jsonl"
    if not path.is_file():
        if corpus:
            raise FileNotFoundError(f"{path}: --corpus file not found")
        return []
    if rejected is None:
        return [pin for _, pin in read_records(path, validate_pin, ReportedElsewhere()) if pin_text(pin)]
    rejected.unlink(missing_ok=True)  # re-running rewrites it rather than appending duplicates
    with DeadLetter(rejected) as dead_letter:
        pins = [pin for _, pin in read_records(path, validate_pin, dead_letter) if pin_text(pin)]
    if dead_letter.count == 0:
        rejected.unlink(missing_ok=True)
    return pins


def document_texts(pairs: dict, corpus_texts: list[str]) -> list[str]:
    """Distinct document texts for the IDF: every task's positives (all splits: they are pins, not judgments)
    and the corpus."""
    seen = dict.fromkeys(corpus_texts)
    for data in pairs.values():
        for split in SPLITS:
            seen.update(dict.fromkeys(data[split][POSITIVE]))
    return list(seen)


def starting_table(tokenizer, documents: list[str], config: TrainConfig):
    """(initial word table, documents behind its IDF) for `config.init` (see pintext.trainer.init)."""
    from pintext.trainer.init import lexical_table, random_table

    if config.init == "lexical":
        return lexical_table(tokenizer, documents, config.dim, seed=config.seed)
    return random_table(tokenizer.get_vocab_size(), config.dim, seed=config.seed), len(documents)


def _training_arguments(config: TrainConfig, output_dir: Path, use_cpu: bool, show_progress: bool):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    from pintext.trainer.losses import IN_BATCH_NEGATIVES

    sampler = MultiDatasetBatchSamplers.PROPORTIONAL
    if config.sampling == "round-robin":
        sampler = MultiDatasetBatchSamplers.ROUND_ROBIN
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.lr,
        warmup_steps=0.05,  # a float is a share of the steps
        multi_dataset_batch_sampler=sampler,
        # In-batch negatives: a duplicate text in the batch would be a false negative for MNRL.
        batch_sampler=BatchSamplers.NO_DUPLICATES if config.loss in IN_BATCH_NEGATIVES else BatchSamplers.BATCH_SAMPLER,
        eval_strategy="epoch",
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=use_cpu,
        disable_tqdm=True,  # RichProgressCallback draws the bar instead
        dataloader_drop_last=False,
    )


@dataclass
class TrainResult:
    """What a training run produced and how fast."""

    model_dir: Path
    config: TrainConfig
    vocab_size: int
    train_pairs: int
    seconds: float
    cpu_seconds: float
    pairs_per_second: float
    device: str
    coverage: dict[str, Any]
    selection: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.config.name,
            "model_dir": str(self.model_dir),
            "vocab_size": self.vocab_size,
            "train_pairs": self.train_pairs,
            "seconds": round(self.seconds, 2),
            "pairs_per_second": round(self.pairs_per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "pairs_per_cpu_second": round(self.train_pairs * self.config.epochs / max(self.cpu_seconds, 1e-9), 1),
            "device": self.device,
        }


def train(pairs_dir: str | Path, out_dir: str | Path, config: TrainConfig, *,
          show_progress: bool = True) -> TrainResult:
    """Train on `pairs_dir`, save the SentenceTransformer, its config, log and runtime into `out_dir`."""
    import torch

    config.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    use_cpu = not torch.cuda.is_available()
    device = "cpu" if use_cpu else "cuda"
    # All cores by default. On a machine shared with other busy jobs, fewer threads can be much faster:
    # these batches are tiny, and oversubscribed OpenMP threads spin (measured: 2 threads 20 s, 1 thread 2 s).
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads if config.threads > 0 else (os.cpu_count() or 1))
    try:
        return _train(pairs_dir, out_dir, config, show_progress, use_cpu, device)
    finally:
        torch.set_num_threads(threads_before)  # process-wide: leave it as the caller had it


def _train(pairs_dir, out_dir: Path, config: TrainConfig, show_progress: bool, use_cpu: bool,
           device: str) -> TrainResult:
    import datasets
    from datasets import DatasetDict
    from sentence_transformers import SentenceTransformerTrainer

    from pintext.encoder import Encoder, HashedWords
    from pintext.trainer.export import export_runtime
    from pintext.trainer.init import rare_word_idf
    from pintext.trainer.losses import RadiusCallback, WeightedLoss, build_loss
    from pintext.trainer.model import build_model, word_module
    from pintext.trainer.selection import EarlyStopping, ValidationScorer
    from pintext.trainer.tokenizer import train_word_tokenizer

    datasets.disable_progress_bars()  # per-split "Map" bars would bury the Rich bar; re-enabled below
    pairs = load_pairs(pairs_dir, config.tasks)
    empty = [task for task in config.tasks if len(pairs[task][TRAIN]) == 0]
    if empty:
        raise PairDataError(f"{pairs_dir}: no training pairs for task(s) {empty} (split {TRAIN!r} is empty)")
    from pintext.schemas import pin_text

    corpus = load_corpus(pairs_dir, config.corpus, out_dir / CORPUS_REJECTED_FILE)
    corpus_texts = [pin_text(pin) for pin in corpus]
    tokenizer = train_word_tokenizer(
        itertools.chain(pair_texts(pairs), corpus_texts), min_count=config.min_count, max_size=config.max_vocab
    )
    documents = document_texts(pairs, corpus_texts)
    weights, n_documents = starting_table(tokenizer, documents, config)
    model = build_model(tokenizer, dim=config.dim, seed=config.seed, device=device, weights=weights)

    train_sets = DatasetDict({task: _training_split(pairs[task], config.refit) for task in config.tasks})
    eval_sets = DatasetDict(
        {task: pairs[task][VALIDATION].select_columns([ANCHOR, POSITIVE]) for task in config.tasks}
    )
    loss = {
        task: WeightedLoss(
            build_loss(config.loss, model, margin=config.margin, negatives=config.negatives, radius=config.radius),
            config.weight_of(task),
        )
        for task in config.tasks
    }
    callbacks: list[Any] = [RadiusCallback(model, config.radius)] if config.radius else []
    stopper = None
    oov = HashedWords(seed=config.seed, scale=rare_word_idf(n_documents)) if config.hash_unseen else None
    scorer = ValidationScorer(pairs, config.tasks, {"oov": oov}, distractors=corpus[:MAX_DISTRACTORS])
    if config.early_stopping and not config.refit and scorer.usable:
        steps_per_epoch = math.ceil(sum(len(data) for data in train_sets.values()) / config.batch_size)
        stopper = EarlyStopping(word_module(model), scorer, every=max(1, steps_per_epoch // 2),
                                patience=config.patience)
        callbacks.append(stopper)
    if show_progress:
        callbacks.append(RichProgressCallback(config.name))
    # The model card samples "widget examples" from the data behind a bare tqdm bar, once per run (so once per trial
    # when choosing settings); an example set here skips it. It only shows on the Hugging Face hub.
    model.model_card_data.widget = [{"text": "a text's vector is the mean of its words' vectors"}]
    trainer = SentenceTransformerTrainer(
        model=model,
        args=_training_arguments(config, out_dir / "checkpoints", use_cpu, show_progress),
        train_dataset=train_sets,
        eval_dataset=eval_sets,
        loss=loss,
        callbacks=callbacks,
    )
    _silence_log_printer(trainer)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        trainer.train()
    finally:
        datasets.enable_progress_bars()
    seconds = time.perf_counter() - started
    # CPU seconds of all this process's threads: a figure that holds up when other jobs share the cores.
    cpu_seconds = time.process_time() - cpu_started
    train_pairs = sum(len(data) for data in train_sets.values())

    checkpoints = out_dir / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()  # save_strategy="no": the trainer only leaves an empty folder behind
    model.save(str(out_dir))
    export_runtime(model, out_dir, float16=config.float16, oov=oov)
    encoder = Encoder.load(out_dir)
    coverage = {task: _coverage_record(encoder, pairs[task]) for task in config.tasks}
    result = TrainResult(
        model_dir=out_dir,
        config=config,
        vocab_size=tokenizer.get_vocab_size(),
        train_pairs=train_pairs,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        pairs_per_second=train_pairs * config.epochs / seconds,
        device=device,
        coverage=coverage,
    )
    selection = {"documents_for_idf": n_documents, "corpus_texts": len(corpus_texts)}
    if stopper is not None:
        record = stopper.record
        selection.update(best_step=record.best_step, best_epoch=round(record.best_epoch, 3),
                         best_validation_score=round(record.best_score, 5), stopped_early=record.stopped_early,
                         best_metrics=record.best_metrics,
                         validation_history=record.history)
    result.selection = selection
    _write_json(out_dir / TRAIN_CONFIG_FILE, {"config": asdict(config), **result.summary(), "coverage": coverage,
                                             "selection": selection})
    _write_json(out_dir / TRAIN_LOG_FILE, _training_log(trainer.state.log_history))
    return result


def _training_split(data, refit: bool):
    """A task's training pairs: the train split, or train + validation for a refit."""
    from datasets import concatenate_datasets

    columns = [ANCHOR, POSITIVE]
    if not refit:
        return data[TRAIN].select_columns(columns)
    return concatenate_datasets([data[TRAIN].select_columns(columns), data[VALIDATION].select_columns(columns)])


def _silence_log_printer(trainer) -> None:
    """The trainer prints every log dict (one per step here); the log goes to training_log.json instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def RichProgressCallback(name: str):
    """A Rich progress bar over optimizer steps, showing the latest training and validation losses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.progress = Progress(
                TextColumn(f"[bold]PinText-{name}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"),
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k.removeprefix("eval_"): v for k, v in (logs or {}).items() if k.endswith("loss")}
            if shown:
                self.progress.update(self.task, description=" ".join(f"{k}={v:.4f}" for k, v in shown.items()))

        def on_train_end(self, args, state, control, **kwargs):
            self.progress.stop()

    return _Callback()


def _coverage_record(encoder, data) -> dict[str, Any]:
    """Per split: word coverage and how many texts got the zero vector (no known word)."""
    record = {}
    for split in SPLITS:
        texts = list(data[split][ANCHOR]) + list(data[split][POSITIVE])
        coverage = encoder.coverage(texts)
        record[split] = {
            "token_share": round(coverage.token_share, 4),
            "text_share": round(coverage.text_share, 4),
            "texts_without_known_word": coverage.texts - coverage.texts_with_known_word,
        }
    return record


def _training_log(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Training loss per step and validation loss per task per evaluation, from the trainer's log history."""
    steps = [{"step": entry["step"], "epoch": entry.get("epoch"), "loss": entry["loss"]}
             for entry in history if "loss" in entry]
    validation = [
        {"step": entry["step"], "epoch": entry.get("epoch"), **{k: v for k, v in entry.items() if k.endswith("_loss")}}
        for entry in history
        if any(key.startswith("eval_") and key.endswith("_loss") for key in entry)
    ]
    return {"train": steps, "validation": validation}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")

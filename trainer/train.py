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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pintext.constants import ANCHOR, HOMEFEED, POSITIVE, RELATED, SEARCH, SPLITS, TASKS, TRAIN, VALIDATION, WEIGHT
from pintext.trainer.evaluate import column_values

MAIN_TASK = SEARCH  # the task the product serves: validation and leak checks are about it

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
    subwords: bool = True  # learn character n-grams beside the words (pintext.subwords); replaces hash_unseen
    subword_buckets: int = 1 << 16
    subword_weight: float = 0.5
    pair_weights: bool = True  # each pair's loss counts by its `weight` column (graded judgments, click counts)
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
        if self.subwords and (self.subword_buckets < 1 or self.subword_weight < 0):
            raise ValueError("need --subword-buckets >= 1 and --subword-weight >= 0")

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


# Pairs are split by anchor (`pintext pairs --val 0.1`): about this many anchors give validation a pair or two.
ANCHORS_FOR_A_SPLIT = 20


def split_counts(data) -> str:
    """'3 pairs (2 train, 0 validation, 1 test)' for one task's DatasetDict."""
    counts = {split: len(data[split]) for split in SPLITS}
    return f"{sum(counts.values())} pairs ({', '.join(f'{n} {split}' for split, n in counts.items())})"


def require_enough_pairs(pairs_dir: str | Path, pairs: dict, tasks: list[str], validation_for: list[str]) -> None:
    """One `PairDataError` line saying how many pairs there are and how many are needed: every task needs a
    training pair, and each task in `validation_for` (settings chosen on validation) a validation pair."""
    for task in tasks:
        data = pairs[task]
        if len(data[TRAIN]) == 0:
            raise PairDataError(f"{pairs_dir}: task {task!r} has {split_counts(data)}: training needs at least 1 "
                                f"in {TRAIN!r} (pairs are split by anchor: about {ANCHORS_FOR_A_SPLIT} different "
                                "anchors fill every split)")
        if task in validation_for and len(data[VALIDATION]) == 0:
            raise PairDataError(f"{pairs_dir}: task {task!r} has {split_counts(data)}: choosing settings on "
                                f"validation needs at least 1 in {VALIDATION!r} (about {ANCHORS_FOR_A_SPLIT} "
                                "different anchors; or pass --no-tune)")


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
        yield from column_values(data[split], ANCHOR)
        yield from column_values(data[split], POSITIVE)


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
            seen.update(dict.fromkeys(column_values(data[split], POSITIVE)))
    return list(seen)


def starting_table(tokenizer, documents: list[str], config: TrainConfig):
    """(initial word table, documents behind the IDF, IDF per word) for `config.init` (pintext.trainer.init)."""
    from pintext.trainer.init import document_frequencies, idf, random_table, table_from_idf

    frequencies, total = document_frequencies(tokenizer, documents)
    weights = idf(frequencies, max(total, 1))
    if config.init == "lexical":
        return table_from_idf(weights, config.dim, seed=config.seed), total, weights
    return random_table(tokenizer.get_vocab_size(), config.dim, seed=config.seed), total, weights


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
    epochs_run: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.config.name,
            "model_dir": str(self.model_dir),
            "vocab_size": self.vocab_size,
            "train_pairs": self.train_pairs,
            "seconds": round(self.seconds, 2),
            "pairs_per_second": round(self.pairs_per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "epochs_run": round(self.epochs_run, 3),
            "pairs_per_cpu_second": round(self.train_pairs * self.epochs_run / max(self.cpu_seconds, 1e-9), 1),
            "device": self.device,
        }


class TrialCache:
    """What the trials of one selection share: work that depends on the pairs folder and the vocabulary settings,
    not on the loss or the learning rate (the tokenizer, the lexical start, the n-gram layout, the texts as word ids,
    the validation scorer). Made once per key by the first trial that needs it; what a trial trains is copied out of
    it, so every trial gets the very values it would have made itself."""

    def __init__(self) -> None:
        self._made: dict[tuple, Any] = {}

    def get(self, key: tuple, make: Any) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]


def train(pairs_dir: str | Path, out_dir: str | Path, config: TrainConfig, *,
          show_progress: bool = True, cache: TrialCache | None = None) -> TrainResult:
    """Train on `pairs_dir`, save the SentenceTransformer, its config, log and runtime into `out_dir`. `cache`: the
    selection's trials share one (`TrialCache`); a lone run needs none."""
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
        return _train(pairs_dir, out_dir, config, show_progress, use_cpu, device, cache or TrialCache())
    finally:
        torch.set_num_threads(threads_before)  # process-wide: leave it as the caller had it


def _train(pairs_dir, out_dir: Path, config: TrainConfig, show_progress: bool, use_cpu: bool,
           device: str, cache: TrialCache) -> TrainResult:
    from pintext.encoder import Encoder
    from pintext.schemas import pin_text
    from pintext.trainer.export import export_runtime
    from pintext.trainer.init import rare_word_idf
    from pintext.trainer.loop import TaskPairs, run_loop
    from pintext.trainer.losses import WeightedLoss, build_loss, renormalize_rows
    from pintext.trainer.model import build_model, word_module
    from pintext.trainer.selection import EarlyStopping, ValidationScorer
    from pintext.trainer.tokenizer import train_word_tokenizer

    pairs = load_pairs(pairs_dir, config.tasks)
    require_enough_pairs(pairs_dir, pairs, config.tasks, validation_for=[])
    corpus = load_corpus(pairs_dir, config.corpus, out_dir / CORPUS_REJECTED_FILE)
    corpus_texts = [pin_text(pin) for pin in corpus]
    # The vocabulary (and so everything made from it) depends on these settings only.
    vocabulary = (str(pairs_dir), tuple(config.tasks), config.refit, config.min_count, config.max_vocab, config.corpus)
    tokenizer = cache.get(("tokenizer", *vocabulary), lambda: train_word_tokenizer(
        itertools.chain(*(pair_texts(pairs, split) for split in (SPLITS if config.refit else (TRAIN,))),
                        corpus_texts),
        min_count=config.min_count, max_size=config.max_vocab,
    ))
    table, n_documents, word_idf = cache.get(
        ("start", *vocabulary, config.init, config.dim, config.seed),
        lambda: starting_table(tokenizer, document_texts(pairs, corpus_texts), config))
    model = build_model(tokenizer, dim=config.dim, seed=config.seed, device=device, weights=table.copy())
    module = word_module(model)
    start = None
    if config.subwords:
        start = cache.get(("subwords", *vocabulary, config.dim, config.seed, config.subword_buckets,
                           config.subword_weight), lambda: subword_start(tokenizer, config, word_idf))
    trained = trained_table(module, config, word_idf, rare_word_idf(n_documents), start)

    held_out = held_out_texts(pairs, config)
    tasks, leak_free = [], {}
    for task in config.tasks:
        anchors, positives, pair_weights, dropped = training_pairs(
            pairs[task], config.refit, held_out if task != MAIN_TASK else frozenset())
        if dropped:
            leak_free[task] = dropped
        loss = WeightedLoss(build_loss(config.loss, model, margin=config.margin, negatives=config.negatives,
                                       radius=config.radius), config.weight_of(task))
        validation = pairs[task][VALIDATION]
        packed_anchors, packed_positives, packed_validation = cache.get(
            ("packed", *vocabulary, task),
            lambda: packed_pairs(trained, anchors, positives,
                                 (column_values(validation, ANCHOR), column_values(validation, POSITIVE))))
        tasks.append(TaskPairs(task, packed_anchors, packed_positives, loss, packed_validation,
                               pair_weights if config.pair_weights else None))
    stopper = None
    scorer = cache.get(("scorer", str(pairs_dir), tuple(config.tasks), config.corpus),
                       lambda: ValidationScorer(pairs, config.tasks, distractors=corpus[:MAX_DISTRACTORS]))
    train_pairs = sum(len(task) for task in tasks)
    if config.early_stopping and not config.refit and scorer.usable:
        steps_per_epoch = math.ceil(train_pairs / config.batch_size)
        stopper = EarlyStopping(trained, scorer, every=max(1, steps_per_epoch // 2), patience=config.patience)
    radius = config.radius
    after_step = (lambda: renormalize_rows(trained.words, radius)) if radius else None
    if after_step is not None:
        after_step()
    started, cpu_started = time.perf_counter(), time.process_time()
    with _progress(config.name, show_progress) as progress:
        log = run_loop(trained, tasks, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                       sampling=config.sampling, seed=config.seed, stopper=stopper, after_step=after_step,
                       progress=progress)
    seconds = time.perf_counter() - started
    # CPU seconds of all this process's threads: a figure that holds up when other jobs share the cores.
    cpu_seconds = time.process_time() - cpu_started

    oov = trained.finish()
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
        pairs_per_second=train_pairs * log.epochs_run / max(seconds, 1e-9),
        device=device,
        coverage=coverage,
        epochs_run=log.epochs_run,
    )
    selection: dict[str, Any] = {"documents_for_idf": n_documents, "corpus_texts": len(corpus_texts)}
    if leak_free:
        selection["auxiliary_pairs_held_out"] = leak_free
    if stopper is not None:
        record = stopper.record
        selection.update(best_step=record.best_step, best_epoch=round(record.best_epoch, 3),
                         best_validation_score=round(record.best_score, 5), stopped_early=record.stopped_early,
                         best_metrics=record.best_metrics,
                         validation_history=record.history)
    result.selection = selection
    _write_json(out_dir / TRAIN_CONFIG_FILE, {"config": asdict(config), **result.summary(), "coverage": coverage,
                                             "selection": selection})
    _write_json(out_dir / TRAIN_LOG_FILE, {"train": log.train, "validation": log.validation})
    return result


def held_out_texts(pairs: dict, config: TrainConfig) -> frozenset[str]:
    """The pins the main task holds out (its validation and test positives), when auxiliary tasks train beside it.

    Auxiliary pairs that touch one of them are left out of training: related pairs made from the same engagement
    would otherwise tie a validation query's pins to the training queries' pins, and validation would reward
    multitask training for what it saw rather than for what generalises. A refit trains on everything."""
    if config.refit or MAIN_TASK not in pairs or len(config.tasks) < 2:
        return frozenset()
    data = pairs[MAIN_TASK]
    return frozenset(itertools.chain(*(column_values(data[split], POSITIVE) for split in SPLITS if split != TRAIN)))


def training_pairs(data, refit: bool, held_out: frozenset[str]) -> tuple[list[str], list[str], np.ndarray | None, int]:
    """(anchors, positives, weights or None, pairs left out) a task trains on: its train split, or every split for
    a refit (the held-out splits chose the settings; the model that serves learns from every pair). Pairs touching
    a `held_out` text are left out. Weights: the `weight` column where every split has one and they differ."""
    splits = SPLITS if refit else (TRAIN,)
    anchors = list(itertools.chain(*(column_values(data[split], ANCHOR) for split in splits)))
    positives = list(itertools.chain(*(column_values(data[split], POSITIVE) for split in splits)))
    weights = None
    if all(WEIGHT in data[split].column_names for split in splits):
        values = np.fromiter(itertools.chain(*(column_values(data[split], WEIGHT) for split in splits)),
                             dtype=np.float32, count=len(anchors))
        if len(values) and values.min() > 0 and values.min() < values.max():
            weights = values
    if not held_out:
        return anchors, positives, weights, 0
    keep = np.fromiter((a not in held_out and p not in held_out for a, p in zip(anchors, positives)), dtype=bool,
                       count=len(anchors))
    kept = np.flatnonzero(keep)
    return ([anchors[i] for i in kept], [positives[i] for i in kept], None if weights is None else weights[kept],
            len(anchors) - len(kept))


def subword_start(tokenizer, config: TrainConfig, word_idf):
    """The n-gram part's layout and first values for `config` (`pintext.trainer.tables.SubwordStart`)."""
    from pintext.subwords import DEFAULT_MAX_N, DEFAULT_MIN_N
    from pintext.trainer.tables import SubwordStart

    return SubwordStart.make(tokenizer, word_idf, buckets=config.subword_buckets, weight=config.subword_weight,
                             dim=config.dim, min_n=DEFAULT_MIN_N, max_n=DEFAULT_MAX_N, seed=config.seed)


def trained_table(module, config: TrainConfig, word_idf, unseen_idf: float, start=None):
    """What the loop trains: words and their n-grams (`config.subwords`, from `start` when made already), or the
    word table alone, whose unseen words are hashed (`config.hash_unseen`) or ignored."""
    from pintext.encoder import HashedWords
    from pintext.subwords import DEFAULT_MAX_N, DEFAULT_MIN_N
    from pintext.trainer.tables import TrainedTable

    if config.subwords:
        return TrainedTable(module, idf=word_idf, unseen_idf=unseen_idf, buckets=config.subword_buckets,
                            weight=config.subword_weight, min_n=DEFAULT_MIN_N, max_n=DEFAULT_MAX_N, seed=config.seed,
                            start=start)
    return TrainedTable(module, oov=HashedWords(seed=config.seed, scale=unseen_idf) if config.hash_unseen else None)


def packed_pairs(trained, anchors: list[str], positives: list[str], validation):
    """(anchors, positives, validation pair or None) of a task packed into word ids once, for the loop."""
    packed_validation = None
    if validation is not None and len(validation[0]) > 0:
        packed_validation = (trained.pack(list(validation[0])), trained.pack(list(validation[1])))
    return trained.pack(anchors), trained.pack(positives), packed_validation


class _progress:
    """A Rich progress bar over optimizer steps with the latest loss (nothing when `show` is off)."""

    def __init__(self, name: str, show: bool) -> None:
        self.name, self.show = name, show
        self.bar: Any = None

    def __enter__(self):
        if not self.show:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(f"[bold]PinText-{self.name}[/]"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.description}"))
        self.bar.start()
        task = self.bar.add_task("", total=None)

        def update(step: int, total: int, loss: float) -> None:
            if step % 20 == 0 or step == total:
                self.bar.update(task, completed=step, total=total, description=f"loss={loss:.4f}")

        return update

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _coverage_record(encoder, data) -> dict[str, Any]:
    """Per split: word coverage and how many texts got the zero vector (no known word)."""
    record = {}
    for split in SPLITS:
        texts = column_values(data[split], ANCHOR) + column_values(data[split], POSITIVE)
        coverage = encoder.coverage(texts)
        record[split] = {
            "token_share": round(coverage.token_share, 4),
            "text_share": round(coverage.text_share, 4),
            "texts_without_known_word": coverage.texts - coverage.texts_with_known_word,
        }
    return record


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    from pintext.atomic import write_text

    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def relocate(result: TrainResult, final_dir: Path) -> TrainResult:
    """`result` as it will be once its folder (built aside) is swapped in at `final_dir`: the path recorded in its
    pintext_train.json is rewritten (in the folder being built) and `model_dir` is `final_dir`."""
    record_file = Path(result.model_dir) / TRAIN_CONFIG_FILE
    if record_file.is_file():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        record["model_dir"] = str(final_dir)
        _write_json(record_file, record)
    return replace(result, model_dir=Path(final_dir))

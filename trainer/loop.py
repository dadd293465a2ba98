"""The training loop: sparse updates of one word table over pre-tokenized pairs.

Why a loop of our own beside sentence-transformers (which still builds, saves and loads the model, and whose loss
protocol the losses keep): the model is one `EmbeddingBag` over a vocabulary of tens of thousands of words, and a
batch touches a few thousand rows. Through `SentenceTransformerTrainer` every step re-tokenized both columns, ran a
dense AdamW step over the whole table (every row, also the untouched ones, moved by their decayed moments) and went
through the Trainer's per-step machinery; on the Home Depot pairs a trial took 45-230 s for what this loop does in a
small fraction of that (docs/results/trainer-speed/). Here:

- texts are turned into word ids once (`PackedTexts`), and a batch is a numpy gather;
- a batch's gradient reaches only the rows it used, and lazy Adam updates only those (an untouched row keeps its
  value and its moments; `pintext.trainer.tables`);
- the learning rate warms up over the first 5% of the steps and decays linearly to zero, as before.

Batches come from one task at a time (proportional: every task's batches shuffled together, so each task is drawn in
proportion to its size; round-robin: tasks in turn until the smallest runs out), and each goes through its task's
loss object (`pintext.trainer.losses`), which already carries the task weight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pintext.text import WordIds
from pintext.trainer.tokenizer import UNK_ID

WARMUP_SHARE = 0.05


@dataclass
class PackedTexts:
    """Word ids of many texts in one flat array: text i is ids[starts[i]:starts[i] + lengths[i]]."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, word_ids: WordIds, texts: Sequence[str], chunk: int = 8192) -> "PackedTexts":
        per_text: list[list[int]] = []
        for begin in range(0, len(texts), chunk):
            per_text.extend(word_ids(list(texts[begin:begin + chunk])))
        lengths = np.fromiter((len(ids) for ids in per_text), dtype=np.int64, count=len(per_text))
        starts = np.zeros(len(per_text), dtype=np.int64)
        if len(per_text) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        flat = np.fromiter((i for ids in per_text for i in ids), dtype=np.int64, count=int(lengths.sum()))
        return cls(flat, starts, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def bag(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(word ids, offsets) of the texts `rows`, in EmbeddingBag layout. An empty text becomes one unknown word,
        which the mean leaves out: the zero vector, as the Encoder gives it."""
        lengths = np.maximum(self.lengths[rows], 1)
        offsets = np.zeros(len(rows), dtype=np.int64)
        if len(rows) > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        positions = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(offsets, lengths)
        source = np.repeat(self.starts[rows], lengths) + positions
        ids = np.full(len(source), UNK_ID, dtype=np.int64)
        real = positions < np.repeat(self.lengths[rows], lengths)
        ids[real] = self.ids[source[real]]
        return ids, offsets


@dataclass
class TaskPairs:
    """One task's pairs, packed, with the loss object that trains on them (task weight included)."""

    name: str
    anchors: PackedTexts
    positives: PackedTexts
    loss: Any
    validation: tuple[PackedTexts, PackedTexts] | None = None
    weights: np.ndarray | None = None  # one per pair (the pairs' `weight` column), or all pairs alike

    def weights_of(self, rows: np.ndarray) -> torch.Tensor | None:
        return None if self.weights is None else torch.from_numpy(self.weights[rows])

    def __len__(self) -> int:
        return len(self.anchors)


@dataclass
class LoopLog:
    """What the loop recorded: the loss per step, each task's validation loss per epoch, and its speed."""

    train: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    epochs_run: float = 0.0
    seconds: float = 0.0


def batch_plan(tasks: Sequence[TaskPairs], batch_size: int, sampling: str,
               rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches as (task index, pair rows)."""
    per_task = []
    for index, task in enumerate(tasks):
        order = rng.permutation(len(task))
        per_task.append([(index, order[start:start + batch_size]) for start in range(0, len(order), batch_size)])
    if sampling == "round-robin":
        rounds = min(len(batches) for batches in per_task)
        return [batches[step] for step in range(rounds) for batches in per_task]
    plan = [batch for batches in per_task for batch in batches]
    return [plan[i] for i in rng.permutation(len(plan))]


def validation_losses(table, tasks: Sequence[TaskPairs], batch_size: int) -> dict[str, float]:
    """Each task's loss on its validation pairs (batches in order, no gradient)."""
    losses: dict[str, float] = {}
    with torch.no_grad():
        for task in tasks:
            if task.validation is None or len(task.validation[0]) < 2:
                continue
            anchors, positives = task.validation
            values, weights = [], []
            for start in range(0, len(anchors), batch_size):
                rows = np.arange(start, min(start + batch_size, len(anchors)))
                if len(rows) < 2:
                    continue
                value = task.loss.compute_loss_from_embeddings(*table.embed([(anchors, rows), (positives, rows)]))
                values.append(float(value))
                weights.append(len(rows))
            if values:
                losses[f"eval_{task.name}_loss"] = float(np.average(values, weights=weights))
    return losses


def run_loop(table, tasks: Sequence[TaskPairs], *, epochs: float, batch_size: int, lr: float,
             sampling: str, seed: int, stopper: Any = None, after_step: Callable[[], None] | None = None,
             progress: Callable[[int, int, float], None] | None = None) -> LoopLog:
    """Train `table` (pintext.trainer.tables.TrainedTable) on `tasks`. `stopper` (selection.EarlyStopping) scores
    validation on its own schedule and may stop the run; `after_step` runs after every update (the radius)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    full_epochs, partial = int(math.floor(epochs)), epochs - math.floor(epochs)
    plans = [batch_plan(tasks, batch_size, sampling, rng) for _ in range(full_epochs + (1 if partial > 0 else 0))]
    if partial > 0:
        plans[-1] = plans[-1][:max(1, int(round(len(plans[-1]) * partial)))]
    total = sum(len(plan) for plan in plans)
    steps_per_epoch = max(1, len(plans[0])) if plans else 1
    warmup = max(1, int(math.ceil(WARMUP_SHARE * total)))
    log = LoopLog()
    started = time.perf_counter()
    if stopper is not None:
        stopper.begin()
    step = 0
    try:
        for epoch_index, plan in enumerate(plans):
            for task_index, rows in plan:
                step += 1
                rate = step / warmup if step <= warmup else max(0.0, (total - step) / max(1, total - warmup))
                task = tasks[task_index]
                loss = task.loss.compute_loss_from_embeddings(
                    *table.embed([(task.anchors, rows), (task.positives, rows)]), task.weights_of(rows))
                loss.backward()
                table.update(lr * rate, step)
                if after_step is not None:
                    after_step()
                epoch = epoch_index + (step - epoch_index * steps_per_epoch) / steps_per_epoch
                log.train.append({"step": step, "epoch": round(epoch, 4), "loss": float(loss.detach())})
                if progress is not None:
                    progress(step, total, float(loss.detach()))
                if stopper is not None and stopper.after_step(step, epoch):
                    raise StopIteration
            log.validation.append({"step": step, "epoch": epoch_index + 1,
                                   **validation_losses(table, tasks, batch_size)})
    except StopIteration:
        pass
    log.steps = step
    log.epochs_run = step / steps_per_epoch
    log.seconds = time.perf_counter() - started
    if stopper is not None:
        stopper.end(step, log.epochs_run)
    return log

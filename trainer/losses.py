"""Training objectives, as sentence-transformers losses (nn.Module with forward(sentence_features, labels)).

`PinTextHingeLoss` is the paper's objective: for a positive pair (q, p+), cos(q, p+) must beat cos(q, p-)
of randomly sampled background pairs by a margin. Background positives are drawn from the other pairs of
the batch (in-batch sampling: uniform over the task's positives, and free, since they are already embedded).
`--loss mnrl` uses sentence-transformers' MultipleNegativesRankingLoss instead, `--loss pintext+mnrl` the sum of
both (`LOSSES` is the registry; the trainer picks among them on the validation split by default).

The radius (norm bound of the word vectors) is enforced by `RadiusCallback`, which renormalizes the rows of
the word table to at most `radius` after every optimizer step. Why a projection and not a penalty: it is the
paper's hard bound (a penalty only discourages), it costs nothing per token, it leaves the loss's value
meaning "hinge violations" alone, and the served table obeys the bound exactly.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.losses.merged_forward import embed_columns
from torch import Tensor, nn
from transformers import TrainerCallback

from pintext.trainer.model import word_module


class PinTextHingeLoss(nn.Module):
    """Hinge on cosine: mean over pairs and sampled negatives of max(0, margin - cos(q,p+) + cos(q,p-))."""

    def __init__(
        self, model: SentenceTransformer, margin: float = 0.2, negatives: int = 16, radius: float | None = 1.0
    ) -> None:
        """
        Args:
            model: the shared model.
            margin: how much the positive's cosine must exceed each background pair's.
            negatives: background pairs sampled per positive pair (capped at batch size - 1).
            radius: norm bound of the word vectors, applied by `RadiusCallback` (recorded here for the config).
        """
        super().__init__()
        if margin < 0 or negatives < 1:
            raise ValueError(f"need margin >= 0 and negatives >= 1, got margin={margin}, negatives={negatives}")
        self.model = model
        self.margin = margin
        self.negatives = negatives
        self.radius = radius

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        anchors, positives = embed_columns(self.model, sentence_features)[:2]
        return self.compute_loss_from_embeddings(anchors, positives)

    def compute_loss_from_embeddings(self, anchors: Tensor, positives: Tensor, weights: Tensor | None = None) -> Tensor:
        """The hinge loss for aligned [batch, dim] anchor and positive embeddings (`weights`: one per pair)."""
        cosines = nn.functional.normalize(anchors, dim=-1) @ nn.functional.normalize(positives, dim=-1).T
        positive_cosine = cosines.diagonal()
        candidates = self._background_mask(positives)
        sampled = self._sample(candidates)
        violations = torch.relu(self.margin - positive_cosine[:, None] + cosines)
        if weights is not None:
            sampled = sampled * weights[:, None]
        violations = violations * sampled
        return violations.sum() / sampled.sum().clamp(min=1e-12)

    @staticmethod
    def _background_mask(positives: Tensor) -> Tensor:
        """Which batch positives may serve as background for each anchor: not its own, and not an identical text
        (a duplicate positive in the batch would be a false negative). Identical texts have the same vector; a
        cosine of 1 finds them with one matrix product instead of a [batch, batch, dim] comparison."""
        return ~same_direction(positives)

    def _sample(self, candidates: Tensor) -> Tensor:
        """Up to `negatives` background pairs per anchor, uniformly among the candidates (as a 0/1 float mask)."""
        batch = candidates.shape[0]
        take = min(self.negatives, batch - 1)
        if take <= 0:
            return torch.zeros_like(candidates, dtype=torch.float32)
        scores = torch.rand(candidates.shape, device=candidates.device).masked_fill(~candidates, -1.0)
        chosen = scores.topk(take, dim=1).indices
        mask = torch.zeros_like(scores).scatter_(1, chosen, 1.0)
        return mask * candidates.float()

    def get_config_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "negatives": self.negatives, "radius": self.radius}

    @property
    def citation(self) -> str:
        return "Zhuang & Liu, PinText: A Multitask Text Embedding System in Pinterest, KDD 2019."


def same_direction(vectors: Tensor) -> Tensor:
    """[batch, batch] True where two rows point the same way (the same text twice; the diagonal included)."""
    units = nn.functional.normalize(vectors.detach(), dim=-1)
    return units @ units.T > 1 - 1e-6


class WeightedLoss(nn.Module):
    """A task's loss times its task weight: how multitask training trades one task against another."""

    def __init__(self, loss: nn.Module, weight: float) -> None:
        super().__init__()
        self.loss: Any = loss  # any loss of this module (each has compute_loss_from_embeddings)
        self.weight = float(weight)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.weight * self.loss(sentence_features, labels)

    def compute_loss_from_embeddings(self, anchors: Tensor, positives: Tensor, weights: Tensor | None = None) -> Tensor:
        return self.weight * self.loss.compute_loss_from_embeddings(anchors, positives, weights)

    def get_config_dict(self) -> dict[str, Any]:
        get_config_dict = getattr(self.loss, "get_config_dict", None)
        inner = get_config_dict() if callable(get_config_dict) else {}
        return {"weight": self.weight, "loss": type(self.loss).__name__, **inner}


def renormalize_rows(table: Tensor, radius: float) -> None:
    """In place: scale every row whose norm exceeds `radius` back onto the sphere of that radius."""
    with torch.no_grad():
        norms = table.norm(dim=1, keepdim=True)
        table.mul_(torch.clamp(radius / norms.clamp(min=1e-12), max=1.0))


class RadiusCallback(TrainerCallback):
    """Projects the word table back into the ball of `radius` after each optimizer step."""

    def __init__(self, model: SentenceTransformer, radius: float) -> None:
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        self.model = model
        self.radius = radius

    def _project(self) -> None:
        # Looked up each time: the trainer may move or wrap the model after this callback is made.
        renormalize_rows(word_module(self.model).embedding.weight, self.radius)

    def on_train_begin(self, args, state, control, **kwargs):
        self._project()

    def on_step_end(self, args, state, control, **kwargs):
        self._project()


class CombinedLoss(nn.Module):
    """The sum of several losses over the same batch (e.g. the PinText hinge plus in-batch negatives)."""

    def __init__(self, losses: list[nn.Module]) -> None:
        super().__init__()
        if not losses:
            raise ValueError("CombinedLoss needs at least one loss")
        self.losses = nn.ModuleList(losses)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        return sum(loss(features, labels) for loss in self.losses)  # type: ignore[return-value]

    def compute_loss_from_embeddings(self, anchors: Tensor, positives: Tensor, weights: Tensor | None = None) -> Tensor:
        parts: list[Any] = list(self.losses)
        return sum(loss.compute_loss_from_embeddings(anchors, positives, weights)  # type: ignore[return-value]
                   for loss in parts)

    def get_config_dict(self) -> dict[str, Any]:
        return {"losses": [type(loss).__name__ for loss in self.losses]}


def _hinge(model: SentenceTransformer, margin: float, negatives: int, radius: float | None) -> nn.Module:
    return PinTextHingeLoss(model, margin=margin, negatives=negatives, radius=radius)


class InBatchNegativesLoss(nn.Module):
    """In-batch negatives (sentence-transformers' MultipleNegativesRankingLoss, scale 20 on cosine): each anchor's
    positive must win a softmax over every positive of the batch. A positive identical to the anchor's own (the same
    pin in two pairs of one batch) is left out of its softmax instead of counting as a negative."""

    def __init__(self, model: SentenceTransformer, scale: float = 20.0) -> None:
        super().__init__()
        self.model = model
        self.scale = scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        anchors, positives = embed_columns(self.model, sentence_features)[:2]
        return self.compute_loss_from_embeddings(anchors, positives)

    def compute_loss_from_embeddings(self, anchors: Tensor, positives: Tensor, weights: Tensor | None = None) -> Tensor:
        """Cross-entropy of each anchor's softmax over the batch's positives; a weighted mean with `weights`."""
        units = nn.functional.normalize(positives, dim=-1)
        scores = self.scale * (nn.functional.normalize(anchors, dim=-1) @ units.T)
        duplicate = same_direction(positives) & ~torch.eye(len(units), dtype=torch.bool, device=units.device)
        scores = scores.masked_fill(duplicate, float("-inf"))
        losses = nn.functional.cross_entropy(scores, torch.arange(len(scores), device=scores.device),
                                             reduction="none")
        if weights is None:
            return losses.mean()
        return (losses * weights).sum() / weights.sum().clamp(min=1e-12)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}


def _mnrl(model: SentenceTransformer, margin: float, negatives: int, radius: float | None) -> nn.Module:
    return InBatchNegativesLoss(model)


def _hinge_and_mnrl(model: SentenceTransformer, margin: float, negatives: int, radius: float | None) -> nn.Module:
    return CombinedLoss([_hinge(model, margin, negatives, radius), _mnrl(model, margin, negatives, radius)])


# The `--loss` registry: name -> builder(model, margin, negatives, radius). `pintext` is the paper's hinge on cosine
# against sampled background pairs; `mnrl` is in-batch negatives (softmax over the batch, sentence-transformers);
# `pintext+mnrl` sums both. Losses that use in-batch negatives need batches without duplicate texts.
LOSSES = {"pintext": _hinge, "mnrl": _mnrl, "pintext+mnrl": _hinge_and_mnrl}
IN_BATCH_NEGATIVES = {"mnrl", "pintext+mnrl"}


def build_loss(kind: str, model: SentenceTransformer, *, margin: float, negatives: int,
               radius: float | None) -> nn.Module:
    """The loss object registered under `kind` (see LOSSES)."""
    if kind not in LOSSES:
        raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {kind!r}")
    return LOSSES[kind](model, margin, negatives, radius)

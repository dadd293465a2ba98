"""PinText losses: hinge on cosine against sampled background pairs, task weights, the radius bound."""

import pytest
import torch

from pintext.trainer.losses import PinTextHingeLoss, RadiusCallback, WeightedLoss, build_loss, renormalize_rows
from pintext.trainer.model import build_model, word_module
from pintext.trainer.tokenizer import train_word_tokenizer


@pytest.fixture(scope="module")
def model():
    return build_model(train_word_tokenizer(["red apple", "green tart", "blue sky"], min_count=1), dim=4, seed=0)


def manual_hinge(anchors, positives, margin):
    anchors = torch.nn.functional.normalize(anchors, dim=-1)
    positives = torch.nn.functional.normalize(positives, dim=-1)
    total, count = 0.0, 0
    for i in range(len(anchors)):
        for j in range(len(positives)):
            if i != j:
                total += max(0.0, margin - float(anchors[i] @ positives[i]) + float(anchors[i] @ positives[j]))
                count += 1
    return total / count


def test_hinge_with_all_background_pairs_matches_the_formula(model):
    torch.manual_seed(1)
    anchors, positives = torch.randn(5, 4), torch.randn(5, 4)
    loss = PinTextHingeLoss(model, margin=0.3, negatives=100)
    value = loss.compute_loss_from_embeddings(anchors, positives)
    assert value.item() == pytest.approx(manual_hinge(anchors, positives, 0.3), rel=1e-5)


def test_hinge_is_zero_when_positives_win_by_the_margin(model):
    anchors = torch.eye(4)
    loss = PinTextHingeLoss(model, margin=0.5, negatives=3)
    assert loss.compute_loss_from_embeddings(anchors, anchors.clone()).item() == 0.0
    # Same pairs with a margin above the cosine gap (1 - 0) must be penalized.
    assert PinTextHingeLoss(model, margin=1.5, negatives=3).compute_loss_from_embeddings(anchors, anchors).item() > 0


def test_duplicate_positive_is_not_a_background_pair(model):
    anchors = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    positives = torch.tensor([[0.0, 1, 0, 0], [0.0, 1, 0, 0]])  # the same pin twice: not a negative
    loss = PinTextHingeLoss(model, margin=0.2, negatives=5)
    assert loss.compute_loss_from_embeddings(anchors, positives).item() == 0.0


def test_negative_sampling_rate_limits_background_pairs(model):
    loss = PinTextHingeLoss(model, margin=0.2, negatives=2)
    mask = loss._sample(loss._background_mask(torch.randn(6, 4)))
    assert mask.sum(dim=1).tolist() == [2.0] * 6
    assert mask.diagonal().sum().item() == 0


def test_loss_trains_through_the_model(model):
    loss = PinTextHingeLoss(model, margin=0.5, negatives=2)
    features = [model.preprocess(["red apple", "blue sky", "green"]), model.preprocess(["apple", "sky", "tart"])]
    value = WeightedLoss(loss, 0.5)(features, None)
    value.backward()
    table_grad = word_module(model).embedding.weight.grad
    assert value.item() > 0 and table_grad is not None and table_grad.abs().sum() > 0
    assert table_grad[0].abs().sum() == 0  # the unknown token never learns


def test_weighted_loss_scales(model):
    inner = PinTextHingeLoss(model, margin=2.0, negatives=2)
    features = [model.preprocess(["red", "blue", "green"]), model.preprocess(["apple", "sky", "tart"])]
    torch.manual_seed(0)
    full = inner(features, None).item()
    torch.manual_seed(0)
    assert WeightedLoss(inner, 0.25)(features, None).item() == pytest.approx(0.25 * full)


def test_renormalize_rows_bounds_norms_and_keeps_short_rows():
    table = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    renormalize_rows(table, 1.0)
    assert table.norm(dim=1).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert table[0].tolist() == pytest.approx([0.6, 0.8])


def test_radius_callback_projects_the_model_table(model):
    table = word_module(model).embedding.weight
    with torch.no_grad():
        table.mul_(100)
    RadiusCallback(model, 0.5).on_step_end(None, None, None)
    assert table.norm(dim=1).max().item() <= 0.5 + 1e-6


def test_build_loss_rejects_unknown_kind(model):
    assert type(build_loss("mnrl", model, margin=0.1, negatives=1, radius=None)).__name__ == "InBatchNegativesLoss"
    with pytest.raises(ValueError, match="--loss"):
        build_loss("triplet", model, margin=0.1, negatives=1, radius=None)

import numpy as np
import pytest

from asclab.evaluate.openset import open_set_decision, tune_open_set_weight
from asclab.evaluate.metrics import compute_metrics, confusion_matrix, log_loss, macro_accuracy


def test_macro_accuracy_differs_from_accuracy_on_unbalanced_data():
    # class 0: 8 examples, all right; class 1: 2 examples, none right
    y = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.9, 0.1], (10, 1))
    m = compute_metrics(probs, y, ["a", "b"], devices=["x"] * 5 + ["y"] * 5)
    assert m.accuracy == pytest.approx(0.8)
    assert m.macro_accuracy == pytest.approx(0.5)
    assert m.per_class == {"a": 1.0, "b": 0.0}
    assert m.per_device["x"]["accuracy"] == 1.0 and m.per_device["y"]["accuracy"] == pytest.approx(0.6)
    assert m.confusion == [[8, 0], [2, 0]]


def test_log_loss_matches_definition():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    y = np.array([0, 1, 0])
    assert log_loss(probs, y) == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.5])))


def test_class_without_examples_is_left_out_of_macro():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert macro_accuracy(cm) == pytest.approx((0.5 + 1.0) / 2)


def test_open_set_weight_moves_decisions_to_unknown():
    probs = np.array([[0.5, 0.2, 0.3], [0.8, 0.15, 0.05]])
    assert open_set_decision(probs, 2, 1.0).tolist() == [0, 0]
    assert open_set_decision(probs, 2, 5.0).tolist() == [2, 0]  # 0.3*5 > 0.5; 0.05*5 < 0.8


def test_tuned_open_set_weight_improves_the_task1c_score():
    rng = np.random.default_rng(0)
    y = np.array([0] * 50 + [1] * 50 + [2] * 50)  # 2 = unknown
    logits = rng.normal(size=(150, 3))
    logits[np.arange(100), y[:100]] += 2.0
    logits[100:, 2] += 0.3  # unknown examples only weakly flagged
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    w, score = tune_open_set_weight(probs, y, 2)
    _, base = tune_open_set_weight(probs, y, 2, weights=[1.0])
    assert w > 1 and score > base

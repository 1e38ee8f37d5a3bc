"""APGD and Square building blocks against the formulas of their papers."""

import pytest
import torch

from robustlearn.attacks.apgd import checkpoints, dlr_loss, top_targets
from robustlearn.attacks.square import margin, square_fraction


def test_checkpoints_follow_croce_hein():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (Croce & Hein 2020, Sec. 3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_loss_matches_equation_6_and_7():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    y = torch.tensor([0])
    # sorted: 4, 3, 2, 1, 0; DLR = -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)
    assert dlr_loss(logits, y).item() == pytest.approx(-(4 - 3) / (4 - 2))
    y = torch.tensor([1])
    assert dlr_loss(logits, y).item() == pytest.approx(-(1 - 4) / (4 - 2))
    target = torch.tensor([2])
    # targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    expected = -(1 - 3) / (4 - (2 + 1) / 2)
    assert dlr_loss(logits, y, target).item() == pytest.approx(expected)


def test_top_targets_skip_the_true_class():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    model = lambda x: logits.expand(len(x), -1)  # noqa: E731
    x, y = torch.zeros(1, 1), torch.tensor([0])
    assert [top_targets(model, x, y, rank).item() for rank in (2, 3, 4)] == [2, 4, 1]


def test_square_schedule_and_margin():
    assert square_fraction(0.8, 5, 10000) == pytest.approx(0.8)
    assert square_fraction(0.8, 11, 10000) == pytest.approx(0.4)
    assert square_fraction(0.8, 9000, 10000) == pytest.approx(0.8 / 2**9)
    assert square_fraction(0.8, 60, 1000) == pytest.approx(0.8 / 2**4)  # 600 of 10000
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    assert margin(logits, torch.tensor([1])).item() == pytest.approx(1.0)
    assert margin(logits, torch.tensor([0])).item() == pytest.approx(-2.0)

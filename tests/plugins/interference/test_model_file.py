"""Safe model files of the interference defense: its bank, checkpoints and draws round-trip."""

import pickle

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn import model_file

from ...core.model_files import rewrite as _rewrite


@pytest.fixture
def inn(fitted_inn):
    """A private copy of the shared fitted network (predicting moves its draw sequence)."""
    return pickle.loads(pickle.dumps(fitted_inn))


def test_round_trip_keeps_checkpoints_backgrounds_and_the_draw_sequence(inn, digits, tmp_path):
    _, _, X_test, _ = digits
    X_test = X_test[:60]
    inn.predict(X_test)  # the sequence is saved where it stands, not at call 0
    path = robustlearn.save(inn, tmp_path / "inn.safetensors")
    loaded = robustlearn.load(path)
    assert sorted(model_file.read_header(path)["state"]) == ["backgrounds_", "checkpoints_",
                                                             "draws_"]
    assert len(loaded.checkpoints_) == len(inn.checkpoints_)
    assert not any(p.requires_grad for m in loaded.checkpoints_ for p in m.parameters())
    assert (loaded.draws_.seed, loaded.draws_.calls) == (inn.draws_.seed, inn.draws_.calls)
    torch.testing.assert_close(loaded.backgrounds_.images, inn.backgrounds_.images, rtol=0, atol=0)
    x = torch.as_tensor(X_test, dtype=torch.float32)
    with torch.no_grad():
        # the fixed-draw and static surfaces are deterministic: identical logits
        for surface in ("fixed-draw", "mean-background"):
            torch.testing.assert_close(loaded.attack_surfaces()[surface].fn(x),
                                       inn.attack_surfaces()[surface].fn(x), rtol=0, atol=0)
    # the random prediction continues the same seeded sequence, call after call
    for _ in range(2):
        np.testing.assert_array_equal(loaded.predict_proba(X_test), inn.predict_proba(X_test))
    assert loaded.reset_draws().draws_.calls == 0


def test_to_moves_the_checkpoints_and_backgrounds_too(inn, digits):
    _, _, X_test, _ = digits
    expected = inn.logits(X_test[:20], draw=0)
    assert inn.to("cpu") is inn
    assert {p.device.type for m in inn.checkpoints_ for p in m.parameters()} == {"cpu"}
    assert inn.backgrounds_.images.device.type == "cpu"
    torch.testing.assert_close(inn.logits(X_test[:20], draw=0), expected)


def _grow_checkpoint(tensors):
    key = next(k for k in tensors if k.startswith("attr.state.checkpoints_[1]")
               and k.endswith("weight']") and tensors[k].ndim == 2)
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])


def _relabel_background(tensors):
    key = next(k for k in tensors if k.startswith("attr.state.backgrounds_") and "labels" in k)
    tensors[key] = tensors[key] + 1000


def _reshape_backgrounds(tensors):
    key = next(k for k in tensors if k.startswith("attr.state.backgrounds_") and "images" in k)
    tensors[key] = tensors[key][:, :, :4].contiguous()


def _declare_cropped_backgrounds(header):
    """The header agrees with the cropped tensor: the model's input shape refuses it."""
    images = header["state"]["backgrounds_"]["__dict__"]["images"]
    images["shape"] = images["shape"][:2] + [4] + images["shape"][3:]


@pytest.mark.parametrize("edit_tensors, edit_header, match", [
    (_grow_checkpoint, lambda h: h, "tampered"),
    (_relabel_background, lambda h: h, "background labels must lie in range"),
    (_reshape_backgrounds, lambda h: h, "tampered"),
    (_reshape_backgrounds, _declare_cropped_backgrounds, "do not fit inputs of shape"),
    (None, lambda h: h["state"]["draws_"]["__dict__"].update(seed=-1), "ints >= 0"),
    (None, lambda h: h["state"].update(checkpoints_=[]), "1 to n_checkpoints"),
], ids=["checkpoint-shape", "background-labels", "background-shape-vs-header",
        "background-shape-vs-model", "draw-seed", "no-checkpoints"])
def test_a_tampered_file_is_refused(inn, tmp_path, edit_tensors, edit_header, match):
    path = robustlearn.save(inn, tmp_path / "inn.safetensors")
    _rewrite(path, edit_header=edit_header, edit_tensors=edit_tensors)
    with pytest.raises(model_file.ModelFileError, match=match):
        robustlearn.load(path)

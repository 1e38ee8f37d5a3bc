"""AttractorPurifier: a transformer that composes with any defense in a Pipeline."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

import robustlearn
from robustlearn.plugins.attractor import AttractorPurifier

SMALL = dict(encoder_layers=(64, 32), decoder_layers=(64,), activation="elu", batch_size=32,
             lr=3e-3, max_epochs=20, finetune_epochs=2, eigen_method="power", max_iter=2,
             device="cpu", random_state=0)


def test_registered_and_made_by_name():
    purifier = robustlearn.make_purifier("attractor", max_iter=5)
    assert isinstance(purifier, AttractorPurifier)
    assert purifier.get_params()["max_iter"] == 5


@pytest.mark.parametrize("shape", [(-1, 1, 8, 8), (-1, 8, 8), (-1, 64)])
def test_transform_returns_the_input_shape_inside_the_unit_interval(digits, shape):
    X, _, _, _ = digits
    images = X[:100].reshape(shape)
    purified = AttractorPurifier(**{**SMALL, "max_epochs": 2, "finetune_epochs": 1}).fit(
        images).transform(images)
    assert purified.shape == images.shape and purified.dtype == np.float32
    assert purified.min() >= 0 and purified.max() <= 1


def test_pipeline_purifier_then_any_defense(digits):
    X, y, X_test, y_test = digits
    pipeline = Pipeline([
        ("purify", robustlearn.make_purifier("attractor", **SMALL)),
        ("clf", robustlearn.make_defense("mlp", hidden_layer_sizes=(64,), max_epochs=15,
                                         device="cpu", random_state=0)),
    ]).fit(X, y)
    assert pipeline.score(X_test, y_test) > 0.75
    purifier = pipeline.named_steps["purify"]
    # purification pulls noisy digits back towards the clean ones
    rng = np.random.RandomState(0)
    noisy = np.clip(X_test[:100] + rng.normal(0, 0.3, X_test[:100].shape), 0, 1)
    noisy = noisy.astype(np.float32)
    before = np.linalg.norm((noisy - X_test[:100]).reshape(100, -1), axis=1)
    after = np.linalg.norm((purifier.transform(noisy) - X_test[:100]).reshape(100, -1), axis=1)
    assert np.median(after) < 0.8 * np.median(before)


def test_purifier_rejects_bad_parameters(digits):
    with pytest.raises(ValueError, match="eigen_method"):
        AttractorPurifier(eigen_method="qr").fit(digits[0][:10])
    with pytest.raises(ValueError, match="max_iter"):
        AttractorPurifier(max_iter=0).fit(digits[0][:10])
    with pytest.raises(TypeError, match="callbacks"):
        AttractorPurifier(callbacks="lr").fit(digits[0][:10])


def test_purifier_trains_on_the_shared_engine_with_user_callbacks(digits):
    from skorch.callbacks import LRScheduler

    from robustlearn.training import PurifierNet

    purifier = AttractorPurifier(**{**SMALL, "max_epochs": 3, "finetune_epochs": 1},
                                 callbacks=[("lr", LRScheduler("StepLR", step_size=1,
                                                               gamma=0.5))])
    purifier.fit(digits[0][:64])
    assert isinstance(purifier.net_, PurifierNet)
    # pre-training (3 epochs) then fine-tuning (1) both ran through the user's schedule
    assert len(purifier.net_.history) == 4
    assert purifier.net_.optimizer_.param_groups[0]["lr"] < SMALL["lr"]

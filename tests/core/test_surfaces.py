"""Typed attack surfaces: every registered defense declares them with a valid kind."""

import pytest
import torch

import robustlearn
from robustlearn.estimator_checks import fast_instance
from robustlearn.registry import get_registry
from robustlearn.surfaces import SURFACE_KINDS, Surface, as_surface, surfaces_by_kind, surfaces_of


def test_surface_is_callable_and_checks_its_kind():
    s = Surface(lambda x: 2 * x, "bpda", "doubles")
    assert torch.equal(s(torch.ones(2)), torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="kind must be one of"):
        Surface(lambda x: x, "approximate")
    with pytest.raises(TypeError, match="callable"):
        Surface(3)


def test_plain_callables_are_coerced_by_name():
    assert as_surface(lambda x: x, "detector").kind == "detector"
    assert as_surface(lambda x: x, "default").kind == "exact"


@pytest.mark.parametrize("name", sorted(robustlearn.list_defenses()))
def test_every_registered_defense_declares_typed_surfaces(name, digits):
    X, y, X_test, _ = digits
    est = fast_instance(get_registry().get("defense", name).factory)
    est.set_params(max_epochs=1)
    if "finetune_epochs" in est.get_params():
        est.set_params(finetune_epochs=1)
    est.fit(X[:200], y[:200])
    surfaces = est.attack_surfaces()
    assert surfaces["default"].kind == "exact" and surfaces["detector"].kind == "detector"
    batch = torch.from_numpy(X_test[:3]).float()
    for key, surface in surfaces.items():
        assert isinstance(surface, Surface) and surface.kind in SURFACE_KINDS, key
        assert surface.description, key
        if surface.kind != "detector":
            assert surface(batch).shape == (3, len(est.classes_)), key
    tags = robustlearn.get_defense_tags(est)
    if tags.iterative:
        assert surfaces_by_kind(est, "bpda"), "an iterative defense must offer a BPDA surface"


def test_estimators_without_surfaces_have_none(fitted_mlp):
    from sklearn.linear_model import LogisticRegression

    assert surfaces_of(LogisticRegression()) == {}
    assert set(surfaces_of(fitted_mlp)) == {"default", "detector"}

"""Composed defenses: a scikit-learn ``Pipeline`` of purifiers and a classifier as one victim.

``Pipeline([("purify", make_purifier("attractor")), ("clf", make_defense("mlp"))])``
predicts like any classifier; this module makes it attackable like one. Its
logits are the composition of each step's differentiable map, and its attack
surfaces combine the steps' surfaces:

* a purifier offers image-to-image maps through ``purify_surfaces()`` (a dict
  of :class:`~robustlearn.Surface`, kinds ``"exact"`` and ``"bpda"``); any
  other transformer that maps images to images is run as it is on the forward
  pass and treated as the identity on the backward pass (BPDA, Athalye,
  Carlini & Wagner, ICML 2018), which is the standard attack on a
  non-differentiable preprocessor;
* ``"default"`` chains every step's exact map (or BPDA where a step has none);
* ``"bpda-<step>"`` replaces one purifier's exact map by its BPDA map;
* every other surface of the final classifier (BPDA through its own loop,
  EOT, transfer, detector) is offered behind the purifiers' default maps.

Tags merge: the pipeline is iterative or stochastic when any step is, and has
the final step's detector.
"""

from __future__ import annotations

import numpy as np
import torch

from .fixed_point import straight_through
from .surfaces import Surface, surfaces_of
from .tags import DefenseTags, get_defense_tags


def is_pipeline(estimator) -> bool:
    """Whether ``estimator`` is a scikit-learn ``Pipeline`` (without importing it eagerly)."""
    from sklearn.pipeline import Pipeline

    return isinstance(estimator, Pipeline)


def _steps(pipeline):
    steps = [(name, step) for name, step in pipeline.steps if step not in (None, "passthrough")]
    if not steps:
        raise ValueError("the Pipeline has no steps")
    return steps[:-1], steps[-1]


def _numpy_bpda(transformer):
    """The transformer's own ``transform`` forward, the identity backward."""

    def apply(x):
        flat = x.detach().cpu().reshape(x.shape[0], -1).numpy()
        out = np.asarray(transformer.transform(flat), dtype=np.float32)
        if out.size != flat.size:
            raise ValueError(
                f"{type(transformer).__name__} changes the number of values per sample "
                f"({flat.shape[1]} -> {out.size // max(len(out), 1)}); only image-to-image "
                "transformers can stand in front of an attacked classifier"
            )
        value = torch.from_numpy(out.reshape(x.shape)).to(x.device)
        return straight_through(value, x)

    return Surface(apply, "bpda",
                   f"{type(transformer).__name__}.transform forward, identity backward")


def purifier_maps(transformer) -> dict:
    """A transformer's image-to-image maps by name: ``purify_surfaces()`` or a BPDA fallback."""
    getter = getattr(transformer, "purify_surfaces", None)
    maps = dict(getter()) if getter is not None else {}
    if not any(s.kind == "bpda" for s in maps.values()):
        maps["bpda-identity"] = _numpy_bpda(transformer)
    return maps


def _default_map(maps):
    exact = [s for s in maps.values() if s.kind == "exact"]
    return exact[0] if exact else next(s for s in maps.values() if s.kind == "bpda")


def _chain(maps, head):
    def composed(x, *args, **kwargs):
        for m in maps:
            x = m(x)
        return head(x, *args, **kwargs)

    return composed


def pipeline_surfaces(pipeline) -> dict:
    """Attack surfaces of a fitted ``Pipeline`` of purifiers and a defense.

    Returns
    -------
    dict of str to Surface
    """
    transformers, (_, final) = _steps(pipeline)
    head = surfaces_of(final)
    if not head:
        raise TypeError(
            f"the Pipeline's final step {type(final).__name__} has no attack_surfaces(); "
            "gradient attacks need a robustlearn defense (or robustlearn.wrap) at the end"
        )
    per_step = [(name, purifier_maps(t)) for name, t in transformers]
    defaults = [_default_map(maps) for _, maps in per_step]
    all_exact = all(m.kind == "exact" for m in defaults)
    surfaces = {}
    for name, surface in head.items():
        kind = surface.kind if (all_exact or surface.kind != "exact") else "bpda"
        surfaces[name] = Surface(_chain(defaults, surface.fn), kind,
                                 f"purifiers' default maps, then {surface.description}")
    for i, (step_name, maps) in enumerate(per_step):
        for map_name, m in maps.items():
            if m.kind != "bpda" or m is defaults[i]:
                continue
            chain = defaults[:i] + [m] + defaults[i + 1:]
            surfaces[f"{map_name}@{step_name}"] = Surface(
                _chain(chain, head["default"].fn), "bpda",
                f"{step_name}: {m.description}; the rest exact")
    return surfaces


def pipeline_tags(pipeline) -> DefenseTags:
    """Merged capability tags of a ``Pipeline``'s steps."""
    transformers, (_, final) = _steps(pipeline)
    tags = get_defense_tags(final)
    step_tags = [getattr(t, "__robustlearn_tags__", None) for _, t in transformers]
    step_tags = [t() for t in step_tags if t is not None]
    return DefenseTags(
        iterative=tags.iterative or any(t.iterative for t in step_tags) or any(
            hasattr(t, "purify_surfaces") for _, t in transformers),
        stochastic=tags.stochastic or any(t.stochastic for t in step_tags),
        has_detector=tags.has_detector,
        custom_detector=tags.custom_detector,
        certified=None,
        adversarially_trained=tags.adversarially_trained,
        gradient_attacks=tags.gradient_attacks,
    )


def pipeline_torch_modules(pipeline) -> list:
    """Every fitted ``module_`` of the pipeline's steps (frozen while an attack runs)."""
    return [step.module_ for _, step in pipeline.steps
            if isinstance(getattr(step, "module_", None), torch.nn.Module)]


def pipeline_input_shape(pipeline):
    """Per-sample image shape: the final step's ``input_shape_`` (purifiers keep the shape)."""
    for _, step in reversed(pipeline.steps):
        shape = getattr(step, "input_shape_", None)
        if shape:
            return tuple(shape)
    return ()


def pipeline_device(pipeline):
    """Device of the final step's module (CPU when it has none)."""
    _, (_, final) = _steps(pipeline)
    try:
        return torch.device(final.device_)
    except Exception:  # noqa: BLE001 - any estimator without a torch device runs on CPU
        return torch.device("cpu")

"""Attack surfaces: the typed, differentiable maps a defense lets an attacker target.

A defense declares its surfaces in one place, ``attack_surfaces()``, as a dict
of name to :class:`Surface`. Each surface maps a tensor batch of images in
[0, 1] to logits and says what kind of gradient it gives, so that attacks and
evaluation choose adaptive attacks by ``kind``, never by name:

``"exact"``
    the whole prediction function, differentiated as it is computed;
``"bpda"``
    the real forward pass with a surrogate backward pass (through an inner
    loop, a quantiser, a purifier), Athalye, Carlini & Wagner, ICML 2018;
``"eot"``
    an expectation over the defense's randomness (a soft vote over draws);
``"transfer"``
    a static model close to the defense (its base network without the loop
    or the randomness), attacked in place of the defense;
``"detector"``
    two logits ``[accepted, flagged]`` of the defense's detector (or a joint
    map that is only fooled when the detector is too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The kinds of attack surface, in the order evaluation reads them.
SURFACE_KINDS = ("exact", "bpda", "eot", "transfer", "detector")


@dataclass(frozen=True)
class Surface:
    """A differentiable map from images in [0, 1] to logits, with what it approximates.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> logits`` on a tensor batch (gradients flow back to ``x``).
        Detector surfaces may also take the labels, ``fn(x, y)``.
    kind : {"exact", "bpda", "eot", "transfer", "detector"}, default="exact"
    description : str, default=""
        One line saying what the surface computes (shown in reports).

    Examples
    --------
    >>> import torch
    >>> s = Surface(lambda x: x.flatten(1)[:, :2], kind="exact", description="toy")
    >>> s(torch.zeros(3, 1, 2, 2)).shape
    torch.Size([3, 2])
    """

    fn: Callable
    kind: str = "exact"
    description: str = ""

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"Surface fn must be callable, got {type(self.fn).__name__}")
        if self.kind not in SURFACE_KINDS:
            raise ValueError(f"Surface kind must be one of {SURFACE_KINDS}, got {self.kind!r}")

    def __call__(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs)


def as_surface(value, name="default") -> Surface:
    """Coerce a plain callable (as older plugins declare them) to a :class:`Surface`.

    A callable named ``"detector"`` (or starting with ``"detector"``) is a
    detector surface, one named ``"default"`` is exact; any other bare callable
    is taken as exact too, since nothing says it approximates.
    """
    if isinstance(value, Surface):
        return value
    kind = "detector" if str(name).startswith("detector") else "exact"
    return Surface(value, kind=kind, description=f"{name} (declared as a plain callable)")


def surfaces_of(estimator) -> dict:
    """Attack surfaces of ``estimator`` as ``{name: Surface}`` (empty if it declares none)."""
    getter = getattr(estimator, "attack_surfaces", None)
    if getter is None:
        from .composition import is_pipeline, pipeline_surfaces

        return pipeline_surfaces(estimator) if is_pipeline(estimator) else {}
    return {name: as_surface(fn, name) for name, fn in getter().items()}


def surfaces_by_kind(estimator, kind) -> dict:
    """The estimator's surfaces of one ``kind``, by name."""
    if kind not in SURFACE_KINDS:
        raise ValueError(f"kind must be one of {SURFACE_KINDS}, got {kind!r}")
    return {name: s for name, s in surfaces_of(estimator).items() if s.kind == kind}

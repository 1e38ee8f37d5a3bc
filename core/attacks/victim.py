"""The model an attack targets: a fitted estimator seen through one attack surface.

An attack reaches a defense only through :meth:`BaseDefense.attack_surfaces`,
the differentiable maps from images in [0, 1] to logits that the defense
declares. :class:`Victim` wraps one of them for the attack code: it encodes
class labels to indices, moves tensors to the defense's device, wraps the
surface in a ``torch.nn.Module`` for Foolbox, and freezes the defense's
parameters while an attack runs.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .. import composition
from ..memory import forward_bytes_per_sample
from ..seeding import torch_seed
from ..surfaces import Surface, as_surface


class SurfaceModule(torch.nn.Module):
    """A ``torch.nn.Module`` whose forward pass is an attack surface (for ``foolbox.PyTorchModel``).

    Parameters
    ----------
    surface : callable
        Maps a batch of images in [0, 1] to logits.
    """

    def __init__(self, surface):
        super().__init__()
        self.surface = surface

    def forward(self, x):
        return self.surface(x)


def _probability_surface(estimator):
    """Log-probabilities of an estimator without attack surfaces (not differentiable)."""

    def surface(x):
        flat = x.detach().cpu().reshape(x.shape[0], -1).numpy()
        proba = np.asarray(estimator.predict_proba(flat), dtype=np.float32)
        return torch.log(torch.from_numpy(proba).clamp_min(1e-12)).to(x.device)

    return surface


class Victim:
    """A fitted estimator as an attack sees it.

    Parameters
    ----------
    estimator : fitted estimator
        A robustlearn defense (anything with ``attack_surfaces`` and
        ``classes_``), or any fitted classifier with ``predict_proba`` (then
        only attacks that need no gradient can run).
    surface : str
        Key of ``estimator.attack_surfaces()``.
    eot_samples : int, default=1
        Expectation over Transformation (Athalye, Carlini & Wagner, ICML 2018):
        the attack differentiates the mean of this many draws of the surface's
        logits, so its gradient is the average of the draws' gradients. Use it
        on defenses tagged ``stochastic``.

    Raises
    ------
    NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If ``surface`` is not one of the estimator's surfaces.
    """

    def __init__(self, estimator, surface="default", eot_samples=1):
        check_is_fitted(estimator)
        self.estimator = estimator
        self.classes = np.asarray(estimator.classes_)
        surfaces_of = getattr(estimator, "attack_surfaces", None)
        self.pipeline = composition.is_pipeline(estimator)
        if self.pipeline:
            surfaces = composition.pipeline_surfaces(estimator)
            self.differentiable = True
        elif surfaces_of is not None:
            surfaces = {name: as_surface(fn, name) for name, fn in surfaces_of().items()}
            self.differentiable = True
        elif hasattr(estimator, "predict_proba"):
            surfaces = {"default": Surface(_probability_surface(estimator), "exact",
                                           "log predict_proba (not differentiable)")}
            self.differentiable = False
        else:
            raise TypeError(
                f"{type(estimator).__name__} has neither attack_surfaces() nor predict_proba; "
                "attacks need one of them"
            )
        if surface not in surfaces:
            raise ValueError(
                f"surface must be one of {sorted(surfaces)} for {type(estimator).__name__}, "
                f"got {surface!r}"
            )
        self.surface_name = surface
        self.surface = surfaces[surface]
        self.kind = self.surface.kind
        logits = _direct_forward(estimator, self.surface.fn) or self.surface.fn
        self.eot_samples = int(eot_samples)
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be an int >= 1, got {eot_samples!r}")
        self.logits = logits if self.eot_samples == 1 else _expectation(logits, self.eot_samples)
        self.input_shape = (composition.pipeline_input_shape(estimator) if self.pipeline
                            else tuple(getattr(estimator, "input_shape_", ()) or ()))
        self.device = self._device()

    def _device(self):
        if self.pipeline:
            return composition.pipeline_device(self.estimator)
        try:
            return torch.device(self.estimator.device_)
        except (AttributeError, NotFittedError, TypeError):
            return torch.device("cpu")

    def module(self) -> SurfaceModule:
        """The surface as an evaluation-mode ``torch.nn.Module``."""
        return SurfaceModule(self.logits).eval()

    def bytes_per_sample(self):
        """Estimated bytes one image costs in a forward-and-backward pass of the surface.

        Measured with forward hooks on every layer of the estimator's torch
        networks during one pass of :attr:`logits` on a zero image
        (:func:`robustlearn.memory.forward_bytes_per_sample`), so EOT draws and
        the iterations of an iterative defense count as often as they run.

        Returns
        -------
        int or None
            None when it cannot be measured: no torch network (a scikit-learn
            classifier), no known input shape, or a surface that fails on a
            zero image.
        """
        modules = _torch_modules(self.estimator)
        if not modules or not self.input_shape:
            return None
        try:
            # a stochastic surface draws noise: measure without moving the caller's RNG; an
            # iterative one may warn about convergence on a blank image: not the user's input
            with torch_seed(0), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return forward_bytes_per_sample(modules, self.logits, self.input_shape,
                                                self.device)
        except Exception:  # noqa: BLE001 - any surface error only disables the estimate
            return None

    def encode(self, y) -> np.ndarray:
        """Map class labels (of the estimator's ``classes_``) to int64 indices."""
        y = np.asarray(y)
        index = np.searchsorted(self.classes, y)
        index = np.clip(index, 0, len(self.classes) - 1)
        unknown = self.classes[index] != y
        if np.any(unknown):
            bad = np.unique(y[unknown])[:5].tolist()
            raise ValueError(
                f"y holds labels {bad} that the victim was not fitted on "
                f"(its classes_ are {self.classes.tolist()})"
            )
        return index.astype(np.int64)

    def predict_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class indices of a batch, without gradients."""
        with torch.no_grad():
            return self.logits(x.to(self.device)).argmax(dim=1)

    @contextlib.contextmanager
    def frozen(self):
        """Stop autograd from computing gradients for the estimator's parameters.

        Foolbox calls ``loss.backward()``, which also computes and accumulates
        the gradient of every parameter that requires one; on a
        784-512-512-10 MLP that is most of the backward pass. An attack needs
        only the gradient with respect to the input.
        """
        params = [
            p for module in _torch_modules(self.estimator) for p in module.parameters()
            if p.requires_grad
        ]
        for p in params:
            p.requires_grad_(False)
        try:
            yield self
        finally:
            for p in params:
                p.requires_grad_(True)

    @contextlib.contextmanager
    def channels_last(self, x):
        """Run the estimator's networks in channels-last memory layout, if that is safe.

        On CPU a 2x2 max-pool over a channels-first (NCHW) activation is slower
        than the convolution before it (on the ``cnn`` baseline a forward pass
        takes about three times as long as in channels-last layout), and
        attacks such as Square evaluate the network thousands of times. Inside
        this context the parameters and buffers of the estimator's torch
        modules are stored channels-last; on exit the original tensors are put
        back, so the estimator is left exactly as it was.

        The layout is switched only on CPU, for 4-d images, when a network has
        a 2-d convolution, and when the logits of the first images of ``x``
        agree in both layouts (a deterministic forward pass that does not
        depend on the layout; anything else keeps the original layout).

        Parameters
        ----------
        x : torch.Tensor (n, C, H, W)
            Images the attack will start from (the first few probe the layouts).
        """
        modules = _torch_modules(self.estimator)
        convolutional = any(isinstance(layer, torch.nn.Conv2d)
                            for module in modules for layer in module.modules())
        if (self.device.type != "cpu" or x.dim() != 4 or len(x) == 0 or not convolutional
                or not self.differentiable):
            yield self
            return
        # Module.to() also converts, in place, the gradients parameters hold: put back those too
        saved = [(t, t.data, t.grad, None if t.grad is None else t.grad.data)
                 for module in modules for t in (*module.parameters(), *module.buffers())]

        def restore():
            for tensor, data, grad, grad_data in saved:
                tensor.data = data
                if grad is not None:
                    grad.data = grad_data
                if tensor.grad is not grad:
                    tensor.grad = grad

        probe = x[:8]
        try:
            # the probe must not use up random draws of a stochastic defense
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                before = self.logits(probe)
                for module in modules:
                    module.to(memory_format=torch.channels_last)
                after = self.logits(probe)
            same = bool(torch.allclose(before, after, rtol=1e-4, atol=1e-4))
        except Exception:  # noqa: BLE001 - e.g. a .view() needing channels-first strides
            same = False
        if not same:
            restore()
            yield self
            return
        try:
            yield self
        finally:
            restore()


def _direct_forward(estimator, surface):
    """``estimator._forward`` when ``surface`` is the unmodified ``BaseDefense.logits``.

    ``logits`` checks fitting, switches to evaluation mode and reshapes on every
    call; an attack calls it once per step on batches already of the right
    shape, dtype and device, so those checks are done once here instead.
    """
    from ..defense import BaseDefense

    if not isinstance(estimator, BaseDefense) or type(estimator).logits is not BaseDefense.logits:
        return None
    if surface != estimator.logits:
        return None
    estimator.module_.eval()
    forward = estimator._forward
    shape = tuple(estimator.input_shape_)
    device = estimator.device_

    def logits(x):
        if tuple(x.shape[1:]) != shape or x.device != device or x.dtype != torch.float32:
            return estimator.logits(x)
        return forward(x)

    return logits


def _expectation(logits_fn, samples):
    """Mean of ``samples`` calls of a stochastic logits function (EOT)."""

    def logits(x, *args, **kwargs):
        total = logits_fn(x, *args, **kwargs)
        for _ in range(samples - 1):
            total = total + logits_fn(x, *args, **kwargs)
        return total / samples

    return logits


def _torch_modules(estimator):
    if composition.is_pipeline(estimator):
        return composition.pipeline_torch_modules(estimator)
    module = getattr(estimator, "module_", None)
    return [module] if isinstance(module, torch.nn.Module) else []

"""Labelled background images that interference networks superpose on their inputs.

Two recipes of the authors' public code (github.com/xiongyunuo/INN):

* MNIST: the background of each image is another random *training* image, and its
  label is that image's class (``K = C`` background labels, ``C * C`` joint classes);
* CIFAR-10: a small fixed set of background images (six JPEGs), labelled by their
  index (``K = 6``, 60 joint classes).

:func:`make_background_bank` builds either, or ``K`` seeded smooth random patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BackgroundBank:
    """Background images with their labels.

    Attributes
    ----------
    images : torch.Tensor of shape (B, C, H, W)
    labels : torch.Tensor of int64, shape (B,)
        Background label of each image, in ``range(n_labels)``.
    n_labels : int
        K, the number of background labels.
    """

    images: torch.Tensor
    labels: torch.Tensor
    n_labels: int

    def to(self, device):
        """The bank on ``device``."""
        return BackgroundBank(self.images.to(device), self.labels.to(device), self.n_labels)

    def draw(self, n, generator=None, device=None):
        """``n`` backgrounds drawn uniformly with replacement: ``(images, labels)``."""
        device = self.images.device if device is None else device
        index = torch.randint(len(self.images), (n,), generator=generator, device=device)
        index = index.to(self.images.device)
        return self.images[index], self.labels[index]

    def mean(self):
        """Mean background, shape (1, C, H, W): the expected superposition."""
        return self.images.mean(dim=0, keepdim=True)

    def to_state(self):
        """The bank as plain data (tensors and an int), for a safe model file."""
        return {"images": self.images, "labels": self.labels, "n_labels": int(self.n_labels)}

    @classmethod
    def from_state(cls, state, input_shape, n_labels):
        """A bank from :meth:`to_state` read from a file, checked against the fitted model.

        Parameters
        ----------
        state : dict
            ``{"images", "labels", "n_labels"}`` as written by :meth:`to_state`.
        input_shape : tuple (C, H, W)
            The model's ``input_shape_``; every image must have this shape.
        n_labels : int
            The model's ``n_background_labels_``; every label must be below it.

        Raises
        ------
        ValueError
            If a shape, dtype or label does not fit the model.
        """
        images, labels = state["images"], state["labels"]
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise ValueError("the background images and labels must be tensors")
        if (images.ndim != 1 + len(input_shape) or tuple(images.shape[1:]) != tuple(input_shape)
                or len(images) == 0 or not images.is_floating_point()):
            raise ValueError(f"background images of shape {tuple(images.shape)} and dtype "
                             f"{images.dtype} do not fit inputs of shape {tuple(input_shape)}")
        if tuple(labels.shape) != (len(images),) or labels.dtype != torch.int64:
            raise ValueError(f"background labels of shape {tuple(labels.shape)} and dtype "
                             f"{labels.dtype}, expected ({len(images)},) int64")
        if state["n_labels"] != n_labels or labels.min() < 0 or labels.max() >= n_labels:
            raise ValueError(f"background labels must lie in range({n_labels})")
        return cls(images.to(torch.float32), labels, int(n_labels))


def smooth_patterns(k, input_shape, seed):
    """``k`` seeded smooth random images in [0, 1] (4x4 uniform noise, bilinearly upsampled)."""
    c, h, w = input_shape
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((k, c, 4, 4)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear",
                                           align_corners=True)


def make_background_bank(backgrounds, X, y, input_shape, seed):
    """Build the bank a fit uses.

    Parameters
    ----------
    backgrounds : "training", int or array-like of shape (K, ...)
        ``"training"``: the training images themselves, labelled by class (MNIST
        recipe); an int K: K seeded smooth random patterns; an array: those K
        images (CIFAR-10 recipe), labelled 0..K-1.
    X : ndarray of shape (n, C, H, W)
        Training images.
    y : ndarray of int, shape (n,)
        Encoded training labels.
    input_shape : tuple (C, H, W)
    seed : int

    Returns
    -------
    BackgroundBank
    """
    if isinstance(backgrounds, str):
        return BackgroundBank(torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)),
                              int(y.max()) + 1)
    if isinstance(backgrounds, (int, np.integer)):
        images = smooth_patterns(int(backgrounds), input_shape, seed)
    else:
        images = torch.as_tensor(np.asarray(backgrounds, dtype=np.float32))
        images = images.reshape((len(images),) + tuple(input_shape))
    k = len(images)
    return BackgroundBank(images, torch.arange(k), k)

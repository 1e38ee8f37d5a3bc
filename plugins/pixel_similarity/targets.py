"""Pixel-similarity targets ST_h (Attias, Pehlevan & Obeid, arXiv 2410.03952, Sec. 3).

The target for a pair of regularisation images is read off their pixels:
images are averaged to one channel, flattened, the mean image of the
regularisation set is subtracted and each vector is L2-normalised; the cosine
similarity ``S_ij`` of two vectors is then thresholded at ``Th`` to
``T_ij = +1`` (``S_ij > Th``), ``-1`` (``S_ij < -Th``) or ``0`` (otherwise), with
``T_ii = 1``.
"""

from __future__ import annotations

import numpy as np


def pixel_similarity_matrix(images) -> np.ndarray:
    """Cosine similarities of mean-subtracted, normalised grayscale images.

    Parameters
    ----------
    images : array-like of shape (N, C, H, W), (N, H, W) or (N, d)
        The regularisation images; channels are averaged first (the paper
        works on grayscale images).

    Returns
    -------
    ndarray of float64, shape (N, N)
        ``S_ij`` in [-1, 1]; an image equal to the mean image (zero vector
        after centring) has similarity 0 with every other image.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x.mean(axis=1)
    x = x.reshape(len(x), -1)
    x = x - x.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    return np.clip(x @ x.T, -1.0, 1.0)


def threshold_targets(similarity, threshold: float) -> np.ndarray:
    """Thresholded targets ``T = +1 if S > Th, -1 if S < -Th, else 0`` with ``T_ii = 1``.

    Parameters
    ----------
    similarity : ndarray of shape (N, N)
        Pixel similarities from :func:`pixel_similarity_matrix`.
    threshold : float in [0, 1]
        ``Th``.

    Returns
    -------
    ndarray of int8, shape (N, N)
    """
    s = np.asarray(similarity)
    t = np.zeros(s.shape, dtype=np.int8)
    t[s > threshold] = 1
    t[s < -threshold] = -1
    np.fill_diagonal(t, 1)
    return t

"""The ResNet with a representational-similarity head (Li et al., NeurIPS 2019, Sec. 2).

For a pair of images the model similarity is a softmax-weighted average over
depths of the cosine similarity of the two feature maps, each centred by a
running per-channel mean (an exponential moving average over the images of
every regularisation batch). The depth weights are learned, starting uniform.
"""

from __future__ import annotations

import torch
from torch import nn

from robustlearn.networks import ResNet


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel of radius ``ceil(2 sigma)``."""
    radius = max(1, int(torch.ceil(torch.tensor(2.0 * sigma)).item()))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(grid**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


class GaussianBlur(nn.Module):
    """Fixed depthwise Gaussian blur (reflect padding), a low-pass input filter."""

    def __init__(self, channels: int, sigma: float):
        super().__init__()
        kernel = gaussian_kernel(sigma)
        self.pad = kernel.shape[-1] // 2
        self.channels = channels
        self.register_buffer("kernel", kernel.expand(channels, 1, *kernel.shape).clone())

    def forward(self, x):
        mode = "reflect" if min(x.shape[-2:]) > self.pad else "replicate"
        x = nn.functional.pad(x, (self.pad,) * 4, mode=mode)
        return nn.functional.conv2d(x, self.kernel, groups=self.channels)


class SimilarityResNet(nn.Module):
    """A :class:`robustlearn.networks.ResNet` that also returns pair similarities.

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    n_classes : int
    width, blocks, stem_kernel
        Passed to :class:`robustlearn.networks.ResNet`.
    depths : tuple of int
        Indices into ``ResNet.features`` (0 = stem, 1..len(blocks) = stages)
        whose similarities are averaged.
    ema_beta : float
        Momentum of the running per-channel means: ``m <- beta m + (1 - beta) batch``.
    blur_sigma : float
        Standard deviation (pixels) of a fixed Gaussian blur in front of the
        network; 0 is none (the blur baseline uses it).
    """

    def __init__(self, input_shape, n_classes, *, width, blocks, stem_kernel, depths,
                 ema_beta, blur_sigma=0.0):
        super().__init__()
        self.blur = GaussianBlur(input_shape[0], blur_sigma) if blur_sigma > 0 else nn.Identity()
        self.resnet = ResNet(input_shape, n_classes, width=width, blocks=blocks,
                             stem_kernel=stem_kernel)
        self.depths = tuple(depths)
        self.ema_beta = float(ema_beta)
        self.depth_logits = nn.Parameter(torch.zeros(len(self.depths)))
        channels = [width] + [width * 2**i for i in range(len(blocks))]
        for d in self.depths:
            self.register_buffer(f"running_mean_{d}", torch.zeros(channels[d]))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        return self.resnet(self.blur(x))

    def features(self, x):
        """Feature maps at the chosen depths, in order."""
        feats = self.resnet.features(self.blur(x))
        return [feats[d] for d in self.depths]

    def depth_weights(self) -> torch.Tensor:
        """Softmax of the learnable depth logits (uniform at initialisation)."""
        return torch.softmax(self.depth_logits, dim=0)

    def pair_similarity(self, xa, xb, *, per_depth=False):
        """Model similarity ``s_hat`` of the pairs ``(xa[i], xb[i])``.

        In training mode the running means are updated first with the batch's
        per-channel means over both images of every pair (detached: the
        centring is a statistic, not a path for gradients).

        Returns
        -------
        Tensor of shape (k,), or (k, n_depths) with ``per_depth=True``.
        """
        k = len(xa)
        feats = self.features(torch.cat([xa, xb]))
        first = self.training and int(self.n_updates) == 0
        cosines = []
        for d, f in zip(self.depths, feats):
            mean = getattr(self, f"running_mean_{d}")
            if self.training:
                batch_mean = f.detach().mean(dim=(0, 2, 3))
                # The first update starts the average at the batch mean rather than at 0.
                mean.copy_(batch_mean if first else
                           self.ema_beta * mean + (1 - self.ema_beta) * batch_mean)
            centred = (f - mean.view(1, -1, 1, 1)).flatten(1)
            cosines.append(nn.functional.cosine_similarity(centred[:k], centred[k:], dim=1,
                                                           eps=1e-8))
        if self.training:
            self.n_updates += 1
        cos = torch.stack(cosines, dim=1)
        if per_depth:
            return cos
        return cos @ self.depth_weights()

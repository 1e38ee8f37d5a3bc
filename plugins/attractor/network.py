"""The attractor network: a fully connected autoencoder with a classification head on its code.

Alipour & SeyyedSalehi, "Robust Image Classification in the Presence of
Out-of-Distribution and Adversarial Samples Using Attractors in Neural
Networks", arXiv 2406.10579 (2024): an autoencoder f = D o E on flattened
images whose output is fed back to its input at test time, with a softmax
classifier reading the bottleneck code.
"""

from __future__ import annotations

from torch import nn

#: Hidden-layer activations by name (a saturating unit is the paper group's habit).
ACTIVATIONS = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
#: Output activations: ``sigmoid`` keeps reconstructions in [0, 1] like the pixels.
OUTPUT_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "identity": nn.Identity}


def _stack(widths, activation, last_activation):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        is_last = i == len(widths) - 2
        layers.append(last_activation() if is_last else activation())
    return nn.Sequential(*layers)


class AttractorNetwork(nn.Module):
    """Autoencoder ``f = decode o encode`` on flat inputs plus a linear head on the code.

    With the defaults of :class:`AttractorClassifier` the widths are
    784-500-300-300 (encoder, the last 300 being the code) and 300-300-500-784
    (decoder): six weight matrices, about 1.27 M parameters.

    Parameters
    ----------
    n_inputs : int
        Values per flattened image.
    encoder_layers : tuple of int
        Widths after each encoder layer; the last one is the code width.
    decoder_layers : tuple of int
        Hidden widths of the decoder (its output layer has ``n_inputs`` units).
    n_classes : int
    activation : str
        Key of :data:`ACTIVATIONS`, used after every hidden layer and on the code.
    output_activation : str
        Key of :data:`OUTPUT_ACTIVATIONS`.
    """

    def __init__(self, n_inputs, encoder_layers, decoder_layers, n_classes,
                 activation="tanh", output_activation="sigmoid"):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.n_inputs = int(n_inputs)
        self.code_width = int(encoder_layers[-1])
        self.encoder = _stack((self.n_inputs, *encoder_layers), act, act)
        self.decoder = _stack(
            (self.code_width, *decoder_layers, self.n_inputs), act,
            OUTPUT_ACTIVATIONS[output_activation],
        )
        self.head = nn.Linear(self.code_width, n_classes)

    def encode(self, x):
        """Code ``E(x)`` of flat inputs ``x`` of shape (n, n_inputs) (or (n_inputs,))."""
        return self.encoder(x)

    def decode(self, z):
        """Reconstruction ``D(z)``, flat."""
        return self.decoder(z)

    def step(self, x):
        """One pass of the dynamics, ``f(x) = D(E(x))``, on flat inputs."""
        return self.decoder(self.encoder(x))

    def classify(self, x):
        """Logits read from the code of flat inputs ``x``: ``head(E(x))``."""
        return self.head(self.encoder(x))

    def forward(self, x):
        """One-pass logits ``head(E(x))`` of images of any shape (flattened)."""
        return self.classify(x.flatten(1))

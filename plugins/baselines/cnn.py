"""Small convolutional network baseline."""

from robustlearn.defense import BaseDefense
from robustlearn.networks import SmallCNN
from robustlearn.validation import check_int, check_int_tuple


class CNNClassifier(BaseDefense):
    """A small conv net (conv-pool blocks, one hidden layer): the undefended reference.

    Parameters
    ----------
    channels : tuple of int, default=(32, 64)
        Output channels of the 3x3 conv blocks, each followed by 2x2 max-pooling.
    hidden : int, default=128
        Width of the fully connected hidden layer.
    **kwargs
        Shared training parameters (``max_epochs``, ``lr``, ``optimizer__*``, ``callbacks``,
        ...), see :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(channels=(8,), hidden=32, max_epochs=30)

    def __init__(
        self,
        channels=(32, 64),
        hidden=128,
        **kwargs,
    ):
        self.channels = channels
        self.hidden = hidden
        super().__init__(**kwargs)

    def _validate_params(self):
        super()._validate_params()
        check_int_tuple(self.channels, "channels")
        check_int(self.hidden, "hidden", low=1)

    def _build_module(self, input_shape, n_classes):
        return SmallCNN(input_shape, tuple(self.channels), self.hidden, n_classes)

"""Small convolutional network baseline."""

from robustlearn.defense import BaseDefense
from robustlearn.validation import check_int, check_int_tuple

from .networks import SmallCNN


class CNNClassifier(BaseDefense):
    """A small conv net (conv-pool blocks, one hidden layer): the undefended reference.

    Parameters
    ----------
    channels : tuple of int, default=(32, 64)
        Output channels of the 3x3 conv blocks, each followed by 2x2 max-pooling.
    hidden : int, default=128
        Width of the fully connected hidden layer.
    max_epochs, batch_size, lr, optimizer, calibration_fraction
        See :class:`robustlearn.BaseDefense`.
    detect_tpr, device, random_state, verbose
        See :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(channels=(8,), hidden=32, max_epochs=30)

    def __init__(
        self,
        channels=(32, 64),
        hidden=128,
        *,
        max_epochs=20,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        calibration_fraction=0.1,
        detect_tpr=0.95,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.channels = channels
        self.hidden = hidden
        super().__init__(
            max_epochs=max_epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            calibration_fraction=calibration_fraction, detect_tpr=detect_tpr, device=device,
            random_state=random_state, verbose=verbose,
        )

    def _validate_params(self):
        super()._validate_params()
        check_int_tuple(self.channels, "channels")
        check_int(self.hidden, "hidden", low=1)

    def _build_module(self, input_shape, n_classes):
        return SmallCNN(input_shape, tuple(self.channels), self.hidden, n_classes)

"""Plain multilayer perceptron baseline."""

from robustlearn.defense import BaseDefense
from robustlearn.validation import check_int_tuple

from .networks import MLP


class MLPClassifier(BaseDefense):
    """A plain ReLU multilayer perceptron: the undefended reference.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Widths of the hidden layers.
    max_epochs, batch_size, lr, optimizer, calibration_fraction
        See :class:`robustlearn.BaseDefense`.
    detect_tpr, device, random_state, verbose
        See :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(hidden_layer_sizes=(64,), max_epochs=30)

    def __init__(
        self,
        hidden_layer_sizes=(512, 512),
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
        self.hidden_layer_sizes = hidden_layer_sizes
        super().__init__(
            max_epochs=max_epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            calibration_fraction=calibration_fraction, detect_tpr=detect_tpr, device=device,
            random_state=random_state, verbose=verbose,
        )

    def _validate_params(self):
        super()._validate_params()
        check_int_tuple(self.hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)

    def _build_module(self, input_shape, n_classes):
        n_inputs = input_shape[0] * input_shape[1] * input_shape[2]
        return MLP(n_inputs, tuple(self.hidden_layer_sizes), n_classes)

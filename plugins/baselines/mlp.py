"""Plain multilayer perceptron baseline, with a (loose) certified linf radius."""

from robustlearn.certification import sequential_linf_lipschitz
from robustlearn.defense import BaseDefense
from robustlearn.networks import MLP
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_int_tuple


class MLPClassifier(BaseDefense):
    """A plain ReLU multilayer perceptron, the undefended reference; certifies (loosely) in linf.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Widths of the hidden layers.
    **kwargs
        Shared training parameters, see :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(hidden_layer_sizes=(64,), max_epochs=30)

    def __init__(self, hidden_layer_sizes=(512, 512), **kwargs):
        self.hidden_layer_sizes = hidden_layer_sizes
        super().__init__(**kwargs)

    def _validate_params(self):
        super()._validate_params()
        check_int_tuple(self.hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)

    def _build_module(self, input_shape, n_classes):
        return MLP(input_shape[0] * input_shape[1] * input_shape[2],
                   tuple(self.hidden_layer_sizes), n_classes)

    def __robustlearn_tags__(self):
        return DefenseTags(certified="linf")

    def _certified_radius(self, x):
        linears = [m for m in self.module_.modules() if type(m).__name__ == "Linear"]
        return self._lipschitz_radius(x, sequential_linf_lipschitz(linears))

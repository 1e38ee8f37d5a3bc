"""Checks of the parameters the attractor classifier and purifier share."""

from robustlearn.validation import check_choice, check_float, check_int, check_int_tuple

from .eigen_loss import EIGEN_METHODS
from .network import ACTIVATIONS, OUTPUT_ACTIVATIONS


def check_attractor_params(estimator) -> None:
    """Validate the network, L_eigen and dynamics parameters of ``estimator``."""
    check_int_tuple(estimator.encoder_layers, "encoder_layers")
    check_int_tuple(estimator.decoder_layers, "decoder_layers", allow_empty=True)
    check_choice(estimator.activation, "activation", ACTIVATIONS)
    check_choice(estimator.output_activation, "output_activation", OUTPUT_ACTIVATIONS)
    check_float(estimator.lambda_eig, "lambda_eig", low=0)
    check_choice(estimator.eigen_method, "eigen_method", EIGEN_METHODS)
    check_float(estimator.eigen_margin, "eigen_margin", low=0, low_open=True)
    check_int(estimator.eigen_batch_size, "eigen_batch_size", low=1)
    check_int(estimator.power_iterations, "power_iterations", low=1)
    check_int(estimator.n_probes, "n_probes", low=1)
    check_int(estimator.finetune_epochs, "finetune_epochs", low=0)
    check_int(estimator.max_iter, "max_iter", low=1)
    check_float(estimator.tol, "tol", low=0)

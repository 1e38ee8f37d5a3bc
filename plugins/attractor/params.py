"""Checks of the parameters the attractor classifier and purifier share."""

from robustlearn.validation import check_choice, check_float, check_int, check_int_tuple

from .eigen_loss import EIGEN_METHODS
from .network import ACTIVATIONS, OUTPUT_ACTIVATIONS

#: The documented configuration (docs/defenses/attractor.md, "Reproduction"): the defaults of
#: :class:`AttractorClassifier` and :class:`AttractorPurifier`, and of
#: ``benchmarks/reproduce_attractor.py``. ``power`` is about 24x faster to train than ``exact``
#: and more robust; 5 passes, because test digits drift to spurious attractors over 50 passes
#: (52 % clean accuracy). tests/plugins/attractor/test_defaults.py holds the estimators to it.
DOCUMENTED_CONFIGURATION = dict(
    activation="elu",
    output_activation="sigmoid",
    lambda_eig=1.0,
    eigen_method="power",
    eigen_margin=0.5,
    eigen_batch_size=16,
    power_iterations=5,
    max_iter=5,
    tol=1e-4,
    max_epochs=40,
    finetune_epochs=20,
    batch_size=32,
    lr=1e-3,
)


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

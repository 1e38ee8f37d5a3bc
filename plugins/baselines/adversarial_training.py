"""PGD adversarial training (Madry et al. 2018) over the MLP or the small CNN."""

import torch.nn.functional as F

from robustlearn.attacks.gradient import NORMS, projected_gradient_descent
from robustlearn.defense import BaseDefense
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_choice, check_float, check_int, check_int_tuple

from .networks import MLP, SmallCNN


class AdversarialTraining(BaseDefense):
    """Train on PGD adversarial examples instead of clean ones.

    Minimises E[max_{||delta|| <= epsilon} CE(f(x + delta), y)], the inner maximum
    approximated by ``attack_steps`` of projected gradient ascent from a random
    start (Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models
    Resistant to Adversarial Attacks", ICLR 2018, Eq. 2.1).

    Parameters
    ----------
    network : {"mlp", "cnn"}, default="cnn"
        Which baseline network to train.
    epsilon : float, default=0.3
        Radius of the threat model during training (images in [0, 1]).
    attack_steps : int, default=10
        PGD steps per batch; 1 with ``random_init=False`` and ``step_size=epsilon`` is FGSM training.
    step_size : float or None, default=None
        PGD step; None means ``2.5 * epsilon / attack_steps``.
    norm : {"linf", "l2"}, default="linf"
    random_init : bool, default=True
        Start PGD from a random point of the ball.
    hidden_layer_sizes : tuple of int, default=(512, 512)
        MLP hidden widths (``network="mlp"``).
    channels : tuple of int, default=(32, 64)
        CNN conv channels (``network="cnn"``).
    hidden : int, default=128
        CNN hidden width (``network="cnn"``).
    max_epochs, batch_size, lr, optimizer, calibration_fraction, detect_tpr, device, random_state, verbose
        See :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(network="mlp", hidden_layer_sizes=(64,), max_epochs=30, epsilon=0.05,
                        attack_steps=2)

    def __init__(
        self,
        network="cnn",
        epsilon=0.3,
        attack_steps=10,
        step_size=None,
        norm="linf",
        random_init=True,
        hidden_layer_sizes=(512, 512),
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
        self.network = network
        self.epsilon = epsilon
        self.attack_steps = attack_steps
        self.step_size = step_size
        self.norm = norm
        self.random_init = random_init
        self.hidden_layer_sizes = hidden_layer_sizes
        self.channels = channels
        self.hidden = hidden
        super().__init__(
            max_epochs=max_epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            calibration_fraction=calibration_fraction, detect_tpr=detect_tpr, device=device,
            random_state=random_state, verbose=verbose,
        )

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.network, "network", ("mlp", "cnn"))
        check_float(self.epsilon, "epsilon", low=0)
        check_int(self.attack_steps, "attack_steps", low=1)
        if self.step_size is not None:
            check_float(self.step_size, "step_size", low=0, low_open=True)
        check_choice(self.norm, "norm", NORMS)
        if not isinstance(self.random_init, bool):
            raise TypeError(f"random_init must be a bool, got {self.random_init!r}")
        check_int_tuple(self.hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)
        check_int_tuple(self.channels, "channels")
        check_int(self.hidden, "hidden", low=1)

    def _build_module(self, input_shape, n_classes):
        if self.network == "mlp":
            n_inputs = input_shape[0] * input_shape[1] * input_shape[2]
            return MLP(n_inputs, tuple(self.hidden_layer_sizes), n_classes)
        return SmallCNN(input_shape, tuple(self.channels), self.hidden, n_classes)

    def _training_loss(self, module, X, y):
        X_adv = projected_gradient_descent(
            module, X, y, epsilon=self.epsilon, steps=self.attack_steps,
            step_size=self.step_size, norm=self.norm, random_init=self.random_init,
        )
        logits = module(X_adv)
        return F.cross_entropy(logits, y), logits

    def __robustlearn_tags__(self):
        return DefenseTags(adversarially_trained=True)

"""Adversarial training (Madry et al. 2018) over the MLP or the small CNN, any gradient attack."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator

from robustlearn.attacks import make_attack
from robustlearn.attacks.gradient import NORMS, projected_gradient_descent
from robustlearn.defense import BaseDefense
from robustlearn.networks import MLP, SmallCNN
from robustlearn.surfaces import Surface
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_bool, check_choice, check_float, check_int, check_int_tuple

#: Attacks run by the torch loop of ``projected_gradient_descent`` every batch.
FAST_ATTACKS = ("pgd", "linf-pgd", "l2-pgd", "fgsm")


class _TrainingVictim(BaseEstimator):
    """The module being trained, dressed as a fitted estimator for attack transformers.

    Private and never cloned: it exists for the duration of one training batch.
    """

    def __init__(self, module, n_classes, device):
        self.module_ = module
        self.classes_ = np.arange(n_classes)
        self.device_ = device

    def fit(self, X=None, y=None):
        """Nothing to fit: the module is trained by the enclosing defense."""
        return self

    def __sklearn_is_fitted__(self):
        return True

    def attack_surfaces(self):
        return {"default": Surface(lambda x: self.module_(x.to(self.device_)), "exact",
                                   "the network being trained")}


class AdversarialTraining(BaseDefense):
    """Train on adversarial examples instead of clean ones.

    Minimises E[max_{||delta|| <= epsilon} CE(f(x + delta), y)], the inner maximum
    approximated by an attack on every batch: by default ``attack_steps`` of
    projected gradient ascent from a random start (Madry, Makelov, Schmidt,
    Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial
    Attacks", ICLR 2018, Eq. 2.1), or any registered gradient attack.

    Parameters
    ----------
    attack : str, default="pgd"
        The inner attack. ``"pgd"`` is PGD in ``norm`` with ``attack_steps``,
        ``step_size`` and ``random_init``; ``"linf-pgd"`` and ``"l2-pgd"`` are
        the same loop with the norm fixed (``norm`` must agree); ``"fgsm"`` is
        one step of size ``epsilon`` without random start (Goodfellow et al.,
        ICLR 2015). These four run in a torch loop inside the training step.
        Any other registered attack that uses gradients (``"apgd-ce"``,
        ``"linf-deepfool"``, ...) runs through its transformer's ``generate``
        on the module being trained, with ``attack_params``.
    attack_params : dict or None, default=None
        Parameters of a transformer attack (for example ``{"steps": 10}``);
        must be empty for the four torch-loop attacks.
    network : {"mlp", "cnn"}, default="cnn"
        Which baseline network to train.
    epsilon : float, default=0.3
        Radius of the threat model during training (images in [0, 1]).
    attack_steps : int, default=10
        PGD steps per batch; 1 with ``random_init=False`` and ``step_size=epsilon`` is
        FGSM training.
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
    **kwargs
        Shared training parameters (``max_epochs``, ``lr``, ``optimizer__*``, ``callbacks``,
        ...), see :class:`robustlearn.BaseDefense`.
    """

    _test_params = dict(network="mlp", hidden_layer_sizes=(64,), max_epochs=30, epsilon=0.05,
                        attack_steps=2)
    #: Settings of ``robustlearn baselines`` (the README's main job on the 8x8 digits): the
    #: MLP, so that the job stays about 30 s, at epsilon 0.1, the middle of its radii.
    _baseline_params = dict(network="mlp", epsilon=0.1)

    def __init__(
        self,
        network="cnn",
        attack="pgd",
        attack_params=None,
        epsilon=0.3,
        attack_steps=10,
        step_size=None,
        norm="linf",
        random_init=True,
        hidden_layer_sizes=(512, 512),
        channels=(32, 64),
        hidden=128,
        **kwargs,
    ):
        self.network = network
        self.attack = attack
        self.attack_params = attack_params
        self.epsilon = epsilon
        self.attack_steps = attack_steps
        self.step_size = step_size
        self.norm = norm
        self.random_init = random_init
        self.hidden_layer_sizes = hidden_layer_sizes
        self.channels = channels
        self.hidden = hidden
        super().__init__(**kwargs)

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.network, "network", ("mlp", "cnn"))
        check_float(self.epsilon, "epsilon", low=0)
        check_int(self.attack_steps, "attack_steps", low=1)
        if self.step_size is not None:
            check_float(self.step_size, "step_size", low=0, low_open=True)
        check_choice(self.norm, "norm", NORMS)
        check_bool(self.random_init, "random_init")
        check_int_tuple(self.hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)
        check_int_tuple(self.channels, "channels")
        check_int(self.hidden, "hidden", low=1)
        self._check_attack()

    def _check_attack(self):
        if not isinstance(self.attack, str):
            raise TypeError(f"attack must be a registered attack name, got {self.attack!r}")
        params = self.attack_params
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"attack_params must be a dict or None, got {params!r}")
        if self.attack in FAST_ATTACKS:
            if params:
                raise ValueError(
                    f"attack_params applies to transformer attacks; attack={self.attack!r} "
                    "takes attack_steps, step_size and random_init"
                )
            implied = {"linf-pgd": "linf", "l2-pgd": "l2", "fgsm": "linf"}.get(self.attack)
            if implied is not None and implied != self.norm:
                raise ValueError(
                    f"attack={self.attack!r} is an {implied} attack but norm={self.norm!r}; "
                    f"set norm={implied!r}"
                )
            return
        transformer = make_attack(self.attack, epsilon=self.epsilon, **(params or {}))
        transformer._validate_params()
        if not transformer.needs_gradient:
            raise ValueError(
                f"attack={self.attack!r} does not use gradients; adversarial training needs a "
                "gradient attack"
            )
        if transformer.norm is not None and transformer.norm != self.norm:
            raise ValueError(
                f"attack={self.attack!r} is an {transformer.norm} attack but norm={self.norm!r}; "
                f"set norm={transformer.norm!r}"
            )

    def _build_module(self, input_shape, n_classes):
        if self.network == "mlp":
            n_inputs = input_shape[0] * input_shape[1] * input_shape[2]
            return MLP(n_inputs, tuple(self.hidden_layer_sizes), n_classes)
        return SmallCNN(input_shape, tuple(self.channels), self.hidden, n_classes)

    def _adversarial_batch(self, module, X, y):
        if self.attack == "fgsm":
            return projected_gradient_descent(
                module, X, y, epsilon=self.epsilon, steps=1, step_size=self.epsilon,
                norm="linf", random_init=False,
            )
        if self.attack in FAST_ATTACKS:
            return projected_gradient_descent(
                module, X, y, epsilon=self.epsilon, steps=self.attack_steps,
                step_size=self.step_size, norm=self.norm, random_init=self.random_init,
            )
        victim = _TrainingVictim(module, len(self.classes_), X.device)
        # the seed comes from torch's RNG, which fit seeds from random_state
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        transformer = make_attack(self.attack, epsilon=self.epsilon, estimator=victim,
                                  random_state=seed, **(self.attack_params or {}))
        X_adv = transformer.generate(X.detach().cpu().numpy(), y.detach().cpu().numpy(),
                                     epsilons=[self.epsilon])[0]
        return torch.from_numpy(X_adv).to(X.device)

    def _training_loss(self, module, X, y):
        X_adv = self._adversarial_batch(module, X, y)
        logits = module(X_adv)
        return F.cross_entropy(logits, y), logits

    def __robustlearn_tags__(self):
        return DefenseTags(adversarially_trained=True)

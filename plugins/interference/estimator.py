"""``InterferenceClassifier``: interference neural networks as a scikit-learn classifier."""

from __future__ import annotations

import numbers
from functools import partial

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from robustlearn.defense import BaseDefense
from robustlearn.surfaces import Surface
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_choice, check_float, check_int

from .backgrounds import BackgroundBank, make_background_bank
from .checkpoints import CheckpointSnapshots, checkpoint_epochs, frozen
from .draws import DrawSequence
from .network import ARCHITECTURES, build_network
from .pipeline import (
    SQUASHES,
    class_log_proba,
    hard_vote,
    interfere,
    joint_labels,
    soft_vote,
)

VOTINGS = ("soft", "hard")


class InterferenceClassifier(BaseDefense):
    """Interference network: superposed labelled backgrounds, noise, joint labels and voting.

    Xiong et al., "Robust and Efficient Interference Neural Networks for
    Defending Against Adversarial Attacks in ImageNet", arXiv 2310.05947 (2023),
    with the recipes of the authors' MNIST and CIFAR-10 scripts
    (github.com/xiongyunuo/INN). Each training image x of class y is turned into

        squash(SP_gamma((x + beta U) / (1 + beta)) + alpha b_k)

    with ``U`` uniform noise, ``SP_gamma`` salt-and-pepper noise of probability
    gamma and ``b_k`` a random background whose label is k, and the network is
    trained with cross-entropy on the joint label ``C k + y`` (``K C``
    outputs). At prediction, every input is superposed with ``n_votes`` random
    backgrounds and passed through each of the ``n_checkpoints`` saved
    checkpoints; the votes are combined (``voting``) into class scores.

    The prediction is random: it is tagged ``stochastic``, so evaluation
    attacks it with EOT. Call ``i`` of the forward pass after ``fit`` (or
    after ``calibrate_detector`` or ``reset_draws``) draws from
    ``SeedSequence([seed, i])``, ``seed`` drawn from ``random_state``:
    predictions are reproducible call by call, and repeated calls draw afresh
    (see :mod:`robustlearn.plugins.interference.draws`).

    Parameters
    ----------
    alpha : float, default=0.3
        Background coefficient (authors: 0.3 on MNIST, -0.2 on CIFAR-10).
    beta : float, default=0.9
        White-noise intensity, ``(x + beta U) / (1 + beta)`` (authors: 0.9 on
        MNIST, 0.2 on CIFAR-10); 0 disables it.
    gamma : float, default=0.4
        Salt-and-pepper probability (authors: 0.4 on MNIST, 0.2 on CIFAR-10).
    squash : {"exp", "tanh", "none"}, default="exp"
        Final nonlinearity: ``exp(x)`` (authors' MNIST) or
        ``tanh(1.5 (x - 0.5) + 0.5)`` (authors' CIFAR-10).
    backgrounds : "training", int or array-like of shape (K, ...), default="training"
        ``"training"``: each background is a random training image and its label
        is that image's class (authors' MNIST recipe, ``K = C``). An array: these
        K background images, labelled 0..K-1 (authors' CIFAR-10 recipe, six
        images). An int K: K seeded smooth random patterns.
    n_votes : int, default=5
        Random backgrounds drawn per input at prediction (authors: 5).
    n_checkpoints : int, default=3
        Checkpoints voted over: the module at the end of the last epochs, every
        ``checkpoint_interval`` epochs (authors: the last 3, 30 epochs apart);
        fewer when training is too short for them (``checkpoint_epochs_``).
    checkpoint_interval : int, default=1
        Epochs between the checkpoints.
    voting : {"soft", "hard"}, default="soft"
        ``soft``: mean over votes of the class probability marginalised over
        backgrounds, ``p(y) = sum_k p(C k + y)`` (the paper's soft voting);
        ``hard``: fraction of votes whose ``argmax mod C`` is y (the authors'
        scripts), ties broken by the soft vote.
    test_noise : bool, default=False
        Also add the white and salt-and-pepper noise at prediction; the authors'
        evaluation scripts set both to 0 and keep only the random background.
    architecture : {"small_cnn", "resnet", "mlp"} or callable, default="small_cnn"
        Backbone with ``K C`` outputs; a callable is called as
        ``architecture(input_shape, n_outputs, **architecture_params)``.
    architecture_params : dict, optional
        Backbone parameters, e.g. ``{"channels": (32, 64), "hidden": 128}`` for
        ``small_cnn`` or ``{"width": 64, "blocks": (2, 2, 2, 2)}`` for a ResNet-18.
    standardize : bool, default=True
        Standardise the squashed input per channel (batch norm without affine
        parameters) in front of the backbone. Without it the small CNN on the
        authors' MNIST pipeline (inputs in [1, 3.7]) stayed at chance level for
        6 epochs on 4000 digits (docs/defenses/interference.md).
    max_epochs : int, default=20
        Training epochs (authors: 300; the 20 of the issue's measurement of
        their code).
    batch_size : int, default=100
        As the authors.
    lr : float, default=3e-3
        Adam's learning rate. The authors use ``optimizer="sgd", lr=0.01,
        optimizer__momentum=0.9`` for 300 epochs; in the few epochs a CPU
        allows, Adam at 3e-3 learned fastest of what we tried
        (docs/defenses/interference.md).
    **kwargs
        Shared training parameters (``optimizer``, ``optimizer__*``,
        ``callbacks``, ...), see :class:`robustlearn.BaseDefense`.

    Attributes
    ----------
    backgrounds_ : BackgroundBank
        The background images and their labels.
    n_background_labels_ : int
        K.
    checkpoints_ : torch.nn.ModuleList
        The frozen checkpoints voted over, oldest first.
    checkpoint_epochs_ : list of int
        Epochs after which they were taken.
    draws_ : DrawSequence
        Seeds the random draws of each prediction call.
    classes_, n_features_in_, input_shape_, net_, module_, detect_threshold_
        See :class:`robustlearn.BaseDefense`.

    Notes
    -----
    ``robustlearn.save`` stores a fitted network in a safe model file: the
    background bank, the checkpoints (as state dicts, rebuilt by
    ``_build_module`` when loading) and the position of ``draws_`` go to the
    file's fitted state (``_export_fitted_state``), so a loaded network makes
    the same predictions, call after call, as the saved one.

    Examples
    --------
    >>> import robustlearn
    >>> X, y = robustlearn.load_dataset("digits")
    >>> clf = robustlearn.make_defense("interference", max_epochs=2, random_state=0,
    ...     architecture_params={"channels": (8,), "hidden": 32})
    >>> clf.fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _test_params = dict(
        architecture_params={"channels": (8,), "hidden": 32}, alpha=0.1, beta=0.2, gamma=0.05,
        squash="none", max_epochs=15, batch_size=16, lr=3e-3, n_votes=3, n_checkpoints=2,
    )

    def __init__(
        self,
        alpha=0.3,
        beta=0.9,
        gamma=0.4,
        squash="exp",
        backgrounds="training",
        n_votes=5,
        n_checkpoints=3,
        checkpoint_interval=1,
        voting="soft",
        test_noise=False,
        architecture="small_cnn",
        architecture_params=None,
        standardize=True,
        *,
        max_epochs=20,
        batch_size=100,
        lr=3e-3,
        **kwargs,
    ):
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.squash = squash
        self.backgrounds = backgrounds
        self.n_votes = n_votes
        self.n_checkpoints = n_checkpoints
        self.checkpoint_interval = checkpoint_interval
        self.voting = voting
        self.test_noise = test_noise
        self.architecture = architecture
        self.architecture_params = architecture_params
        self.standardize = standardize
        super().__init__(max_epochs=max_epochs, batch_size=batch_size, lr=lr, **kwargs)

    # ------------------------------------------------------------ validation
    def _validate_params(self):
        super()._validate_params()
        check_float(self.alpha, "alpha")
        check_float(self.beta, "beta", low=0)
        check_float(self.gamma, "gamma", low=0, high=1)
        check_choice(self.squash, "squash", SQUASHES)
        self._check_backgrounds()
        check_int(self.n_votes, "n_votes", low=1)
        check_int(self.n_checkpoints, "n_checkpoints", low=1)
        check_int(self.checkpoint_interval, "checkpoint_interval", low=1)
        check_choice(self.voting, "voting", VOTINGS)
        for name in ("test_noise", "standardize"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        self._check_architecture()

    def _check_backgrounds(self):
        value = self.backgrounds
        if isinstance(value, str):
            if value != "training":
                raise ValueError(
                    f"backgrounds must be 'training', an int or an array of images, got {value!r}"
                )
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            check_int(value, "backgrounds", low=1)
        else:
            try:
                images = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    "backgrounds must be 'training', an int or an array of images, got "
                    f"{type(value).__name__}"
                ) from exc
            if images.ndim < 2 or len(images) == 0 or not np.all(np.isfinite(images)):
                raise ValueError(
                    "backgrounds given as an array must hold at least one finite image, "
                    f"got shape {images.shape}"
                )

    def _check_architecture(self):
        if not callable(self.architecture):
            check_choice(self.architecture, "architecture", ARCHITECTURES)
        params = self.architecture_params
        if params is None:
            return
        if not isinstance(params, dict):
            raise TypeError(f"architecture_params must be a dict or None, got {params!r}")
        if not callable(self.architecture):
            unknown = sorted(set(params) - set(ARCHITECTURES[self.architecture]))
            if unknown:
                raise ValueError(
                    f"architecture_params has keys {unknown} that {self.architecture!r} does not "
                    f"take (it takes {sorted(ARCHITECTURES[self.architecture])})"
                )

    # ------------------------------------------------------------------ hooks
    def _n_background_labels(self, n_classes):
        if isinstance(self.backgrounds, str):
            return n_classes
        if isinstance(self.backgrounds, numbers.Integral):
            return int(self.backgrounds)
        return len(np.asarray(self.backgrounds))

    def _build_module(self, input_shape, n_classes):
        if not isinstance(self.backgrounds, (str, numbers.Integral)):
            images = np.asarray(self.backgrounds, dtype=np.float32)
            if images[0].size != int(np.prod(input_shape)):
                raise ValueError(
                    f"backgrounds images have {images[0].size} values each, the training images "
                    f"{int(np.prod(input_shape))} (shape {tuple(input_shape)})"
                )
        self.n_background_labels_ = self._n_background_labels(n_classes)
        return build_network(self.architecture, self.architecture_params, input_shape,
                             self.n_background_labels_ * n_classes,
                             standardize=bool(self.standardize))

    def _training_loss(self, module, X, y):
        images, labels = self._training_bank.draw(len(X), device=X.device)
        x = interfere(X, images, alpha=self.alpha, beta=self.beta, gamma=self.gamma,
                      squash_kind=self.squash)
        joint = module(x)
        loss = torch.nn.functional.cross_entropy(
            joint, joint_labels(y, labels, len(self.classes_))
        )
        return loss, class_log_proba(joint, len(self.classes_))

    def _train(self, net, X, y):
        # Drawn from torch's global generator, which fit has seeded from random_state.
        bank_seed, draw_seed = torch.randint(0, 2**31 - 1, (2,)).tolist()
        self.backgrounds_ = make_background_bank(
            self.backgrounds, X.numpy(), y.numpy(), self.input_shape_, bank_seed
        )
        self._training_bank = self.backgrounds_.to(net.device)
        self.checkpoint_epochs_ = checkpoint_epochs(
            int(self.max_epochs), int(self.n_checkpoints), int(self.checkpoint_interval)
        )
        snapshots = CheckpointSnapshots(self.checkpoint_epochs_)
        net.callbacks = [*(net.callbacks or []), ("interference_checkpoints", snapshots)]
        net.fit(X, y)
        taken = dict(net.callbacks_)["interference_checkpoints"]
        self.checkpoints_ = torch.nn.ModuleList(taken.snapshots_)
        taken.snapshots_ = []  # the copies live in checkpoints_ only
        self.backgrounds_ = self._training_bank
        del self._training_bank
        self.draws_ = DrawSequence(draw_seed)

    def _calibrate_detector(self, X_cal):
        super()._calibrate_detector(X_cal)
        # The deployed sequence of draws starts after calibration, so that a
        # defense's predictions do not depend on how many images calibrated it.
        self.draws_.reset()

    def _forward(self, x):
        return self._vote(x, self.draws_.next_generator(x.device), int(self.n_votes),
                          self.voting)

    def _vote(self, x, generator, n_votes, voting, straight_through=False):
        """Class log-scores of a vote over ``n_votes`` backgrounds x every checkpoint."""
        n, n_classes = len(x), len(self.classes_)
        images, _ = self.backgrounds_.draw(n_votes * n, generator, device=x.device)
        noisy = bool(self.test_noise)
        superposed = interfere(
            x.repeat(n_votes, 1, 1, 1), images, alpha=self.alpha,
            beta=self.beta if noisy else 0.0, gamma=self.gamma if noisy else 0.0,
            squash_kind=self.squash, generator=generator, straight_through=straight_through,
        )
        joint = torch.cat(
            [m(superposed).reshape(n_votes, n, -1) for m in self.checkpoints_], dim=0
        )
        if voting == "hard":
            return hard_vote(joint, n_classes)
        log_p = class_log_proba(joint.flatten(0, 1), n_classes).reshape(-1, n, n_classes)
        return soft_vote(log_p)

    def _export_fitted_state(self):
        # robustlearn.save: the bank, the checkpoints and the draw sequence are objects, so
        # they are stored as plain data (tensors, state dicts, ints) in the file's "state"
        return {
            "backgrounds_": self.backgrounds_.to_state(),
            "checkpoints_": [m.state_dict() for m in self.checkpoints_],
            "draws_": self.draws_.to_state(),
        }

    def _import_fitted_state(self, state):
        # robustlearn.load: each checkpoint is rebuilt by _build_module and loaded strictly
        # (a tensor of the wrong name or shape is refused), the bank is checked against the
        # fitted input shape and background labels
        from robustlearn.model_file import load_module_state

        weights = state["checkpoints_"]
        if not isinstance(weights, list) or not 1 <= len(weights) <= int(self.n_checkpoints):
            raise ValueError(f"expected 1 to n_checkpoints={self.n_checkpoints} checkpoints")
        device = self.device_
        n_classes = len(self.classes_)
        checkpoints = [
            frozen(load_module_state(self._build_module(self.input_shape_, n_classes), w,
                                     f"checkpoints_[{i}]")).to(device)
            for i, w in enumerate(weights)
        ]
        self.checkpoints_ = torch.nn.ModuleList(checkpoints)
        self.backgrounds_ = BackgroundBank.from_state(
            state["backgrounds_"], self.input_shape_, self.n_background_labels_
        ).to(device)
        self.draws_ = DrawSequence.from_state(state["draws_"])

    def to(self, device):
        """Move the fitted networks (``module_`` and the checkpoints) and the backgrounds.

        Parameters
        ----------
        device : str or torch.device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.

        Returns
        -------
        self
        """
        super().to(device)
        self.checkpoints_.to(self.device_)
        self.backgrounds_ = self.backgrounds_.to(self.device_)
        return self

    def __robustlearn_tags__(self):
        return DefenseTags(stochastic=True)

    def _expected_failed_checks(self):
        return {
            "check_classifiers_train": (
                "predict and predict_proba are two calls, hence two independent random draws "
                "of backgrounds; their argmax may differ on a few ambiguous samples"
            ),
        }

    # ---------------------------------------------------------------- public
    def logits(self, x, *, draw=None, voting=None, n_votes=None):
        """Differentiable class log-scores of the vote (the deployed prediction by default).

        Parameters
        ----------
        x : torch.Tensor of shape (n, C, H, W)
            Images in [0, 1] (or any shape with ``n_features_in_`` values each).
        draw : int, optional
            None draws fresh backgrounds (the next seed of ``draws_``, as
            ``predict`` does); an int uses the fixed, seeded draw of that number,
            the same on every call (a fixed-randomness attack).
        voting : {"soft", "hard"}, optional
            Defaults to ``voting``. The soft vote, averaged over many calls, is
            the expectation over draws an EOT attack differentiates.
        n_votes : int, optional
            Backgrounds per input; defaults to ``n_votes``.

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Log of the voted class probabilities (soft) or vote fractions (hard).
        """
        check_is_fitted(self)
        x = self._as_batch(x)
        voting = self.voting if voting is None else check_choice(voting, "voting", VOTINGS)
        n_votes = int(self.n_votes if n_votes is None else check_int(n_votes, "n_votes", low=1))
        if draw is None:
            generator = self.draws_.next_generator(x.device)
        else:
            generator = self.draws_.fixed_generator(check_int(draw, "draw", low=0), x.device)
        for m in self.checkpoints_:
            m.eval()
        # Salt-and-pepper (with test_noise) has zero gradient on replaced pixels; the
        # soft surfaces pass it straight through (BPDA) so that an attacker sees the rest.
        return self._vote(x, generator, n_votes, voting, straight_through=voting == "soft")

    def mean_background_logits(self, x):
        """Static, deterministic log-scores: ``x + alpha * mean background``, no noise.

        The interference network without its randomness (soft vote over the
        checkpoints), a transfer source for attacks on the random prediction.
        """
        check_is_fitted(self)
        x = self._as_batch(x)
        superposed = interfere(x, self.backgrounds_.mean().to(x.device), alpha=self.alpha,
                               squash_kind=self.squash)
        n_classes = len(self.classes_)
        log_p = torch.stack([class_log_proba(m(superposed), n_classes)
                             for m in self.checkpoints_])
        return soft_vote(log_p)

    def reset_draws(self):
        """Restart the sequence of random draws at call 0 (as after ``fit``); returns self."""
        check_is_fitted(self)
        self.draws_.reset()
        return self

    def attack_surfaces(self):
        """Differentiable maps an attacker may target, by name.

        ``"default"``
            :meth:`logits`: the deployed prediction, fresh random backgrounds at
            every call (``kind="exact"``; evaluation adds EOT because the
            defense is tagged ``stochastic``).
        ``"soft-vote"``
            the soft vote over ``n_votes`` fresh draws whatever ``voting`` is,
            salt-and-pepper passed straight through; averaged over
            ``eot_samples`` calls it is the expectation over draws
            (``kind="eot"``).
        ``"fixed-draw"``
            the soft vote over one fixed, seeded draw of backgrounds (draw 0),
            a deterministic network: a fixed-randomness attack (``kind="transfer"``).
        ``"mean-background"``
            :meth:`mean_background_logits`, the network on ``x + alpha * mean
            background`` without randomness (``kind="transfer"``).
        ``"detector"``
            :meth:`detection_logits` of the max-softmax detector.

        Returns
        -------
        dict of str to :class:`robustlearn.Surface`
        """
        return {
            **super().attack_surfaces(),
            "soft-vote": Surface(partial(self.logits, voting="soft"), "eot",
                                 "soft vote over n_votes fresh background draws (EOT averages "
                                 "it over calls)"),
            "fixed-draw": Surface(partial(self.logits, draw=0, voting="soft"), "transfer",
                                  "soft vote over one fixed seeded draw of backgrounds"),
            "mean-background": Surface(self.mean_background_logits, "transfer",
                                       "checkpoints on x + alpha * mean background, no noise"),
        }

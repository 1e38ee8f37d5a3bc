"""``NEMONClassifier``: the NEMON implicit network as a certified scikit-learn classifier."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, LRScheduler

from robustlearn.certification import margin_radius
from robustlearn.defense import BaseDefense
from robustlearn.surfaces import Surface
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_choice, check_float, check_int

from . import surfaces
from .network import METHODS, ConvNEMON, DenseNEMON

ARCHITECTURES = ("dense", "conv")


class SolverLog(Callback):
    """Records, per epoch, how the equilibrium solves of training went.

    Adds to ``net.history`` per epoch: ``fp_iter_mean`` / ``fp_iter_max``
    (forward iterations), ``fp_residual_max`` (largest true fixed-point
    residual), ``fp_hit_max_iter`` (samples that ended at ``max_iter``),
    ``bw_iter_mean`` / ``bw_residual_max`` (the implicit adjoint solve),
    ``alpha_min`` / ``alpha_max`` (the per-solve step sizes) and
    ``log_norm_max`` (the largest weighted log-norm of ``W`` after any
    optimiser step, which must stay below ``mu``).
    """

    def on_epoch_begin(self, net, **kwargs):
        self._rows = []

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        module = net.module_
        info = module.last_info
        if info is None:
            return
        back = info["result"].backward_result
        # tensors only: reading them out (a float() each) every batch cost as much as the
        # solve's elementwise work; they are reduced once per epoch
        with torch.no_grad():
            self._rows.append(dict(
                iterations=info["iterations"], residual=info["residual"].max(),
                hit=info["result"].hit_max_iter.sum(),
                bw_iterations=None if back is None else back.iterations,
                bw_residual=None if back is None else back.residual.max() / info["alpha"],
                alpha=info["alpha"],
                # the optimiser has stepped when on_batch_end runs: check the new W
                log_norm=module.row_measures().max(),
            ))

    def on_epoch_end(self, net, **kwargs):
        rows = self._rows
        if not rows:
            return
        its = [r["iterations"].float() for r in rows]
        back = [r for r in rows if r["bw_iterations"] is not None]
        h = net.history
        h.record("fp_iter_mean", float(np.mean([float(i.mean()) for i in its])))
        h.record("fp_iter_max", int(max(float(i.max()) for i in its)))
        h.record("fp_residual_max", float(torch.stack([r["residual"] for r in rows]).max()))
        h.record("fp_hit_max_iter", int(torch.stack([r["hit"] for r in rows]).sum()))
        h.record("bw_iter_mean", float(np.mean([float(r["bw_iterations"].float().mean())
                                                for r in back])) if back else float("nan"))
        h.record("bw_residual_max", float(torch.stack([r["bw_residual"] for r in back]).max())
                 if back else float("nan"))
        h.record("alpha_min", float(min(r["alpha"] for r in rows)))
        h.record("alpha_max", float(max(r["alpha"] for r in rows)))
        h.record("log_norm_max", float(torch.stack([r["log_norm"] for r in rows]).max()))
        self._rows = []


class NEMONClassifier(BaseDefense):
    """Non-Euclidean monotone operator network: an l-infinity contracting equilibrium layer.

    Jafarpour, Davydov, Proskurnikov & Bullo, "Robust Implicit Networks via
    Non-Euclidean Contractions", NeurIPS 2021 (arXiv 2106.03194). The logits
    are ``W_out z* + b_out`` at the equilibrium ``z* = ReLU(W z* + U x + b)``,
    where ``W`` is parametrised so that its ``D``-weighted l-infinity log-norm
    is at most ``mu < 1`` (see :mod:`robustlearn.plugins.nemon.network`): the
    equilibrium exists, is unique, and is ``L``-Lipschitz in the input, which
    gives an l-infinity certificate.

    The forward pass iterates from 0 until the fixed-point residual
    ``||f(z) - z|| / ||z||`` is below ``tol``: by default the nonlinear Jacobi
    iteration ``z_i <- ReLU(sum_{j != i} W_ij z_j + u_i) / (1 - W_ii)``, or the
    paper's averaged iteration ``z <- (1 - a) z + a ReLU(W z + U x + b)`` with
    ``a = 1 / (1 - min_i W_ii)`` recomputed from ``W`` at every solve (the
    authors' code shrinks a global ``a`` that never recovers). Both contract
    with the same worst-case factor; Jacobi takes several times fewer
    iterations. The backward pass is the implicit-function gradient, from the
    adjoint fixed point solved to ``backward_tol``; memory does not depend on
    the number of iterations.

    The loss is ``CE + lipschitz_reg * (a^2 + c^2) / 2`` with ``a`` the bound
    on the state's Lipschitz constant and ``c`` that of the readout (the
    AM-GM form of the paper's regulariser, in pixel space).

    Parameters
    ----------
    architecture : {"dense", "conv"}, default="dense"
        ``dense``: flattened input, ``width`` units (the paper's MNIST model).
        ``conv``: ``width`` channels, ``U`` a 3x3 convolution with ``stride``,
        ``W`` a ``kernel_size`` circular convolution, 4x4 average pooling and a
        linear readout (the paper's single-convolution model).
    width : int, default=100
        Units (dense) or channels (conv) of the equilibrium state.
    kernel_size : int, default=5
        Odd kernel size of ``W`` (conv).
    stride : int, default=2
        Stride of ``U`` (conv); the authors use 1, which costs four times as
        much per iteration.
    solver : {"jacobi", "averaged"}, default="jacobi"
        Forward iteration (see
        :meth:`robustlearn.plugins.nemon.network.NEMONNetwork.solve`): the
        nonlinear Jacobi iteration, which solves each unit's self-coupling
        exactly (the default: same equilibrium, same contraction bound, 5 to
        7 times fewer iterations on MNIST), or the paper's averaged iteration.
        The implicit backward solves the adjoint of the same map.
    mu : float, default=0.0
        Contraction margin: the weighted log-norm of ``W`` is kept <= ``mu``
        (must be < 1). The paper's experiments use 0. Lower values contract
        faster and lower the Lipschitz bound by ``1 / (1 - mu)``.
    lipschitz_reg : float, default=3e-3
        Weight of the Lipschitz regulariser (0 is the authors' shipped
        configuration). The default is the documented best configuration on
        dense MNIST (docs/defenses/nemon.md): the only one whose certificate
        is not vacuous (median certified l-infinity radius about 0.02 instead
        of about 0.001), at a cost in clean accuracy.
    tol : float, default=1e-3
        Fixed-point residual at which a sample's forward solve stops.
    max_iter : int, default=300
        Forward iteration budget; a :class:`~robustlearn.fixed_point.FixedPointWarning`
        is emitted when a sample reaches it unconverged.
    backward_tol : float, default=1e-3
        Residual of the implicit adjoint solve.
    backward_max_iter : int, default=300
        Iteration budget of the adjoint solve.
    lr_step : int, default=10
        Divide the learning rate by 10 every ``lr_step`` epochs (the authors'
        StepLR); 0 keeps it constant.
    max_epochs : int, default=10
    batch_size : int, default=100
    **kwargs
        Other training parameters (``lr``, ``optimizer__*``, ``callbacks``, ...),
        see :class:`robustlearn.BaseDefense`. ``optimizer__fused`` defaults to
        True: PyTorch's single-kernel optimiser step, three times faster than the
        per-tensor one on a CPU for this small network (pass False to change it).

    Attributes
    ----------
    lipschitz_ : float
        The per-logit l-infinity Lipschitz bound of the fitted network, in pixel space.
    solver_history_ : list of dict
        Per training epoch: forward and backward iterations, largest
        residuals, samples that hit ``max_iter``, step sizes and the largest
        weighted log-norm of ``W`` after any optimiser step.
    last_solve_ : dict
        ``report()`` of the most recent inference solve (iterations, true
        residuals, step size, samples at ``max_iter``).
    input_mean_, input_std_ : ndarray of shape (C,)
        Per-channel statistics of the training images, used to normalise.
    classes_, n_features_in_, input_shape_, net_, module_, detect_threshold_
        See :class:`robustlearn.BaseDefense`.

    Examples
    --------
    >>> import robustlearn
    >>> X, y = robustlearn.load_dataset("digits")
    >>> clf = robustlearn.make_defense("nemon", width=32, max_epochs=5, random_state=0)
    >>> clf.fit(X, y).certified_radius(X[:3]).shape
    (3,)
    """

    _test_params = dict(width=16, max_epochs=8, batch_size=32, lr=1e-2, lipschitz_reg=0.0,
                        tol=1e-2, backward_tol=1e-2)
    # the optimiser step of the 90k-parameter dense model cost as much as its equilibrium solve
    # in the per-tensor implementation (benchmarks/bench_nemon.py); the fused one is the same
    # update in one kernel
    _routed_defaults = {"optimizer__fused": True}

    def __init__(
        self,
        architecture="dense",
        width=100,
        kernel_size=5,
        stride=2,
        solver="jacobi",
        mu=0.0,
        lipschitz_reg=3e-3,
        tol=1e-3,
        max_iter=300,
        backward_tol=1e-3,
        backward_max_iter=300,
        lr_step=10,
        *,
        max_epochs=10,
        batch_size=100,
        **kwargs,
    ):
        self.architecture = architecture
        self.width = width
        self.kernel_size = kernel_size
        self.stride = stride
        self.solver = solver
        self.mu = mu
        self.lipschitz_reg = lipschitz_reg
        self.tol = tol
        self.max_iter = max_iter
        self.backward_tol = backward_tol
        self.backward_max_iter = backward_max_iter
        self.lr_step = lr_step
        super().__init__(max_epochs=max_epochs, batch_size=batch_size, **kwargs)

    # ------------------------------------------------------------------ hooks
    def _validate_params(self):
        super()._validate_params()
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_int(self.width, "width", low=1)
        check_int(self.kernel_size, "kernel_size", low=1)
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size!r}")
        check_int(self.stride, "stride", low=1)
        check_choice(self.solver, "solver", METHODS)
        check_float(self.mu, "mu", high=1, high_open=True)
        check_float(self.lipschitz_reg, "lipschitz_reg", low=0)
        check_float(self.tol, "tol", low=0, low_open=True)
        check_int(self.max_iter, "max_iter", low=1)
        check_float(self.backward_tol, "backward_tol", low=0, low_open=True)
        check_int(self.backward_max_iter, "backward_max_iter", low=1)
        check_int(self.lr_step, "lr_step", low=0)

    def _validate_training_data(self, X, y):
        X, y = super()._validate_training_data(X, y)
        self.input_mean_ = X.mean(axis=(0, 2, 3)).astype(np.float64)
        # a constant channel would divide by zero; 1 leaves it unscaled
        std = X.std(axis=(0, 2, 3)).astype(np.float64)
        self.input_std_ = np.where(std > 1e-6, std, 1.0)
        return X, y

    def _build_module(self, input_shape, n_classes):
        stats = dict(mu=float(self.mu), mean=tuple(self.input_mean_), std=tuple(self.input_std_))
        if self.architecture == "dense":
            module = DenseNEMON(int(np.prod(input_shape)), int(self.width), n_classes, **stats)
        else:
            module = ConvNEMON(tuple(input_shape), int(self.width), n_classes,
                               kernel_size=int(self.kernel_size), stride=int(self.stride),
                               **stats)
        self._configure(module)
        return module

    def _configure(self, module, **overrides):
        module.solver.update(dict(
            method=self.solver, tol=float(self.tol), max_iter=int(self.max_iter),
            backward="implicit",
            backward_tol=float(self.backward_tol), backward_max_iter=int(self.backward_max_iter),
            alpha="auto", warn=True,
        ), **overrides)

    def _training_loss(self, module, X, y):
        logits = module(X)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if self.lipschitz_reg > 0:
            loss = loss + float(self.lipschitz_reg) * module.lipschitz_regularizer()
        return loss, logits

    def _train(self, net, X, y):
        extra = [("nemon_solver_log", SolverLog())]
        if self.lr_step:
            extra.append(("nemon_lr", LRScheduler("StepLR", step_size=int(self.lr_step),
                                                  gamma=0.1)))
        net.callbacks = list(net.callbacks or []) + extra
        net.fit(X, y)
        keys = ("fp_iter_mean", "fp_iter_max", "fp_residual_max", "fp_hit_max_iter",
                "bw_iter_mean", "bw_residual_max", "alpha_min", "alpha_max", "log_norm_max")
        self.solver_history_ = [{k: row[k] for k in keys if k in row} for row in net.history]
        with torch.no_grad():
            self.lipschitz_ = float(net.module_.lipschitz_bound())

    def _forward(self, x, **solver):
        """Logits at the equilibrium, solved with the current parameters (``tol``, ...)."""
        module = self.module_
        self._configure(module, **solver)
        z, info = module.solve(x)
        self.last_solve_ = {**info["result"].report(),
                            "residual_max": float(info["residual"].max()),
                            "method": info["method"], "alpha": info["alpha"],
                            "tol": info["tol"]}
        return module.readout(z)

    def __robustlearn_tags__(self) -> DefenseTags:
        return DefenseTags(iterative=True, certified="linf")

    def _expected_failed_checks(self):
        return {
            "check_non_transformer_estimators_n_iter": (
                "max_iter bounds the equilibrium solve of each input, not training iterations; "
                "the iterations are reported per epoch in solver_history_ and per call in "
                "last_solve_"
            ),
        }

    # --------------------------------------------------------------- surfaces
    def attack_surfaces(self) -> dict:
        """The base surfaces plus the audit's: tight implicit, unrolled and truncated iterates.

        ``"implicit-tight"`` (exact): the implicit gradient with the forward and
        adjoint solves at ``1e-5``; ``"unrolled"`` (exact): autograd through
        every averaged iteration; ``"iterate-K"`` (bpda) for K in 5, 10, 20:
        the readout of the K-th iterate from 0, differentiated through it
        (Yang, Pang & Liu, NeurIPS 2022, intermediate-gradient attacks).
        """
        check_is_fitted(self)
        out = {
            **super().attack_surfaces(),
            "implicit-tight": Surface(
                lambda x: surfaces.implicit_logits(self, x, tol=1e-5), "exact",
                "implicit-function gradient with forward and adjoint solves at 1e-5"),
            "unrolled": Surface(
                lambda x: surfaces.unrolled_logits(self, x), "exact",
                "autograd through every forward iteration (same forward as predict)"),
        }
        for k in (5, 10, 20):
            out[f"iterate-{k}"] = Surface(
                lambda x, k=k: surfaces.iterate_logits(self, x, k), "bpda",
                f"readout of the {k}-th averaged iterate from 0, differentiated through it")
        return out

    # ---------------------------------------------------------- certification
    def lipschitz_matrix(self):
        """Pairwise l-infinity Lipschitz constants ``L_cj`` of ``f_c - f_j``, pixel space.

        Returns
        -------
        ndarray of shape (n_classes, n_classes)
        """
        check_is_fitted(self)
        with torch.no_grad():
            return self.module_.lipschitz_matrix().cpu().numpy().astype(np.float64)

    def _certified_radius(self, x):
        with torch.no_grad():
            L = self.module_.lipschitz_matrix()
        return margin_radius(self._forward(x), L)

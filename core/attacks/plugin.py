"""Registers the built-in attacks through the ``robustlearn.plugins`` entry point."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .apgd import APGD
from .autoattack import AutoAttack
from .detector_aware import DetectorAwarePGD
from .fab import FAB
from .fixed_epsilon import FGSM, L2PGD, GaussianNoise, LinfPGD, UniformNoise
from .minimization import Boundary, L2CarliniWagner, LinfDeepFool, SaltAndPepper
from .square import Square


def apgd_ce(**params):
    """APGD with cross-entropy loss (``APGD(loss="ce")``)."""
    return APGD(**{"loss": "ce", **params})


def apgd_dlr(**params):
    """APGD with the DLR loss (``APGD(loss="dlr")``)."""
    return APGD(**{"loss": "dlr", **params})


def apgd_t(**params):
    """APGD-T: targeted DLR over the top target classes (``APGD(loss="dlr-targeted")``)."""
    return APGD(**{"loss": "dlr-targeted", **params})


def fab_t(**params):
    """FAB-T: targeted FAB over the top target classes (``FAB(targeted=True)``)."""
    return FAB(**{"targeted": True, **params})


def autoattack_rand(**params):
    """AutoAttack's "rand" version for stochastic defenses: 20 EOT samples per gradient."""
    return AutoAttack(**{"version": "rand", "eot_samples": 20, **params})


_CROCE_HEIN = (
    "Croce, Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse "
    "parameter-free attacks, ICML 2020 (arXiv 2003.01690)"
)
_FAB = (
    "Croce, Hein, Minimally distorted Adversarial Examples with a Fast Adaptive Boundary "
    "Attack, ICML 2020 (arXiv 1907.02044)"
)
_MADRY = (
    "Madry, Makelov, Schmidt, Tsipras, Vladu, Towards Deep Learning Models Resistant to "
    "Adversarial Attacks, ICLR 2018"
)
_FOOLBOX = (
    "Rauber, Zimmermann, Bethge, Brendel, Foolbox Native, JOSS 2020"
)

#: name, factory, description, paper, capabilities
BUILTIN_ATTACKS = (
    ("fgsm", FGSM, "Fast gradient sign method: one linf step of size epsilon.",
     "Goodfellow, Shlens, Szegedy, Explaining and Harnessing Adversarial Examples, ICLR 2015",
     ("linf", "gradient", "fixed-epsilon")),
    ("linf-pgd", LinfPGD,
     "Projected gradient descent in the linf ball (100 steps of 2.5 eps/steps, best point kept).",
     _MADRY,
     ("linf", "gradient", "fixed-epsilon")),
    ("l2-pgd", L2PGD,
     "Projected gradient descent in the l2 ball (100 steps of 2.5 eps/steps, best point kept).",
     _MADRY,
     ("l2", "gradient", "fixed-epsilon")),
    ("l2-cw", L2CarliniWagner, "Carlini-Wagner l2 attack (minimal perturbation).",
     "Carlini, Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017",
     ("l2", "gradient", "minimization")),
    ("linf-deepfool", LinfDeepFool, "DeepFool in the linf norm (minimal perturbation).",
     "Moosavi-Dezfooli, Fawzi, Frossard, DeepFool, CVPR 2016",
     ("linf", "gradient", "minimization")),
    ("boundary", Boundary, "Decision-based Boundary Attack (l2, minimal perturbation).",
     "Brendel, Rauber, Bethge, Decision-Based Adversarial Attacks, ICLR 2018",
     ("l2", "decision-based", "minimization")),
    ("gaussian-noise", GaussianNoise, "Additive Gaussian noise of l2 norm epsilon.", _FOOLBOX,
     ("l2", "model-free", "fixed-epsilon")),
    ("uniform-noise", UniformNoise, "Additive uniform noise of linf norm epsilon.", _FOOLBOX,
     ("linf", "model-free", "fixed-epsilon")),
    ("salt-and-pepper", SaltAndPepper, "Salt-and-pepper noise until the decision changes.",
     _FOOLBOX, ("l2", "decision-based", "minimization")),
    ("apgd-ce", apgd_ce, "Auto-PGD with cross-entropy loss (step-size free).", _CROCE_HEIN,
     ("linf", "l2", "gradient", "fixed-epsilon", "eot")),
    ("apgd-dlr", apgd_dlr, "Auto-PGD with the Difference of Logits Ratio loss.", _CROCE_HEIN,
     ("linf", "l2", "gradient", "fixed-epsilon", "eot")),
    ("apgd-t", apgd_t, "Auto-PGD, targeted DLR loss over the top-9 classes.", _CROCE_HEIN,
     ("linf", "l2", "gradient", "fixed-epsilon", "targeted")),
    ("square", Square, "Square Attack: score-based random search (linf, 5000 queries).",
     "Andriushchenko, Croce, Flammarion, Hein, Square Attack, ECCV 2020 (arXiv 1912.00049)",
     ("linf", "score-based", "fixed-epsilon")),
    ("fab", FAB, "Fast Adaptive Boundary attack (minimal perturbation, untargeted).", _FAB,
     ("linf", "l2", "gradient", "minimization")),
    ("fab-t", fab_t, "FAB-T: targeted FAB over the top-9 classes (minimal perturbation).", _FAB,
     ("linf", "l2", "gradient", "minimization", "targeted")),
    ("autoattack", AutoAttack,
     "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square (linf).", _CROCE_HEIN,
     ("linf", "l2", "gradient", "score-based", "fixed-epsilon", "ensemble")),
    ("detector-aware-pgd", DetectorAwarePGD,
     "Joint PGD: misclassified and not flagged by the victim's detector (selective steps).",
     "Bryniarski, Hingun, Pachuca, Wang, Carlini, Evading Adversarial Example Detectors "
     "using Orthogonal Projected Gradient Descent, ICLR 2022",
     ("linf", "l2", "gradient", "fixed-epsilon", "detector-aware")),
    ("autoattack-rand", autoattack_rand,
     "AutoAttack rand: APGD-CE and APGD-DLR with 20 EOT samples.", _CROCE_HEIN,
     ("linf", "l2", "gradient", "fixed-epsilon", "ensemble", "eot")),
)


@hookimpl
def register_attacks(register):
    for name, factory, description, paper, capabilities in BUILTIN_ATTACKS:
        register(name, factory, description=description, paper=paper,
                 capabilities=capabilities)

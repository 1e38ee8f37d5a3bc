"""The adaptive attack ladder: which attacks an honest evaluation of a defense must run.

:func:`adaptive_attacks` reads a defense's tags and typed attack surfaces
(:mod:`robustlearn.surfaces`) and returns the attacks that
:func:`robustlearn.evaluate` runs when none are named:

* APGD-CE and APGD-T (Croce & Hein, ICML 2020), parameter-free and keeping
  the best point found, through the whole prediction function;
* Square (Andriushchenko et al., ECCV 2020), a score-based attack that needs
  no gradient: the black-box check that white-box attacks beat;
* for an ``iterative`` defense, APGD-CE through every ``bpda`` surface
  (Athalye, Carlini & Wagner, ICML 2018);
* for a ``stochastic`` defense, APGD-CE and APGD-DLR with EOT, and APGD-CE on
  every ``eot`` surface (AutoAttack's "rand" version);
* for a defense with its own detector, the joint detector-aware PGD
  (Carlini & Wagner, AISec 2017; Bryniarski et al., ICLR 2022);
* APGD-CE on every ``transfer`` surface (the static base, Croce et al.,
  ICML 2022): its examples are then judged by the full defense.

:func:`missing_adaptive_attacks` says what a list of attacks the user chose
leaves out, for the WARN shown beside the report's headline.
"""

from __future__ import annotations

from ..surfaces import surfaces_of
from ..tags import get_defense_tags

#: EOT samples per gradient for stochastic defenses (AutoAttack "rand" uses 20).
EOT_SAMPLES = 20

#: Square's query budget in the ladder (a black-box check, not the strongest attack).
SQUARE_QUERIES = 1000


def _n_classes(estimator):
    classes = getattr(estimator, "classes_", None)
    return len(classes) if classes is not None else 10


def adaptive_attacks(estimator, norm="linf", tags=None):
    """The default attacks for ``estimator``, as ``(name, params)`` pairs.

    Parameters
    ----------
    estimator : fitted estimator
        A defense, a ``Pipeline`` ending in one, or any classifier.
    norm : {"linf", "l2"}, default="linf"
    tags : DefenseTags, optional
        Defaults to :func:`robustlearn.get_defense_tags`.

    Returns
    -------
    list of (str, dict)
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    tags = get_defense_tags(estimator) if tags is None else tags
    surfaces = surfaces_of(estimator)
    if not tags.gradient_attacks or not surfaces:
        return [("square", {"n_queries": SQUARE_QUERIES})] if norm == "linf" else [
            ("boundary", {"steps": 1000})]
    attacks = [("apgd-ce", {"norm": norm})]
    if _n_classes(estimator) > 2:
        attacks.append(("apgd-t", {"norm": norm,
                                   "n_target_classes": min(9, _n_classes(estimator) - 1)}))
    if norm == "linf":
        attacks.append(("square", {"n_queries": SQUARE_QUERIES}))
    for name, surface in surfaces.items():
        if name == "default":
            continue
        if surface.kind in ("bpda", "transfer", "eot"):
            attacks.append(("apgd-ce", {"norm": norm, "surface": name}))
    if tags.stochastic:
        attacks.append(("apgd-ce", {"norm": norm, "eot_samples": EOT_SAMPLES}))
        attacks.append(("apgd-dlr", {"norm": norm, "eot_samples": EOT_SAMPLES}))
    if tags.has_detector and tags.custom_detector:
        attacks.append(("detector-aware-pgd", {"norm": norm}))
    return attacks


def _surface_of(spec):
    return str(getattr(spec.attack, "surface", "default"))


def missing_adaptive_attacks(specs, estimator, tags=None):
    """What the chosen attacks leave out of what the tags and surfaces call for.

    Parameters
    ----------
    specs : list of resolved attacks (with ``attack``, ``name``, ``needs_gradient``)
    estimator : fitted estimator
    tags : DefenseTags, optional

    Returns
    -------
    list of str
        One sentence per missing adaptive attack (empty when nothing is missing).
    """
    tags = get_defense_tags(estimator) if tags is None else tags
    surfaces = surfaces_of(estimator)
    gradient = [s for s in specs if s.needs_gradient]
    used = {_surface_of(s) for s in gradient}
    kinds_used = {surfaces[name].kind for name in used if name in surfaces}
    missing = []
    if not tags.gradient_attacks:
        return missing
    if gradient and "default" not in used:
        missing.append("no gradient attack through the whole prediction function "
                       "(surface 'default')")
    if tags.iterative:
        bpda = [name for name, s in surfaces.items() if s.kind == "bpda"]
        if not bpda:
            missing.append("the defense iterates at prediction time but declares no 'bpda' "
                           "surface: its gradients may vanish, and no BPDA attack can run")
        elif "bpda" not in kinds_used:
            missing.append(f"no attack on a BPDA surface ({', '.join(bpda)}) of an iterative "
                           "defense")
    if tags.stochastic:
        eot = any(int(getattr(s.attack, "eot_samples", 1)) > 1 for s in gradient)
        if not eot and "eot" not in kinds_used:
            missing.append("no EOT attack (eot_samples > 1 or an 'eot' surface) on a "
                           "stochastic defense")
    if tags.has_detector and tags.custom_detector and not any(
            s.name == "detector-aware-pgd" or "detector" in kinds_used for s in specs):
        missing.append("no joint attack on the classifier and its detector "
                       "(detector-aware-pgd)")
    transfer = [name for name, s in surfaces.items() if s.kind == "transfer"]
    if transfer and "transfer" not in kinds_used:
        missing.append(f"no transfer attack from the static base ({', '.join(transfer)})")
    if not any(s.name in ("square", "boundary") or not s.needs_gradient for s in specs):
        missing.append("no gradient-free attack (square) to check white-box against "
                       "black-box")
    return missing

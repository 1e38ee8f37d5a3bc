"""scikit-learn's estimator checks for defenses, as a helper plugin authors can run.

Every registered defense and purifier is checked with scikit-learn's
``parametrize_with_checks``/``check_estimator``. A check that truly cannot
apply to a defense is declared by the defense itself, with its reason, in a
method ``_expected_failed_checks(self) -> dict[str, str]``; nothing is skipped
silently. Checks run on a fast instance built from the class attribute
``_test_params`` (small network, few epochs), on CPU.

Examples
--------
In a third-party plugin's test suite::

    from robustlearn.estimator_checks import parametrize_defense_checks
    from my_plugin import MyDefense

    @parametrize_defense_checks([MyDefense(**MyDefense._test_params)])
    def test_sklearn_compatible(estimator, check):
        check(estimator)
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks

from .registry import list_registrations

#: Checks that cannot apply to any :class:`~robustlearn.BaseDefense`, with the reason.
DEFENSE_EXPECTED_FAILED = {
    "check_do_not_raise_errors_in_init_or_set_params": (
        "the check passes the literal name 'kwargs' from the **kwargs of the signature; a "
        "defense's **kwargs takes only skorch-style routed names (optimizer__*, callbacks__*, "
        "...) and rejects any other name with a TypeError"
    ),
}


def expected_failed_checks(estimator) -> dict:
    """Checks ``estimator`` declares as not applicable, as ``{check name: reason}``.

    Every :class:`~robustlearn.BaseDefense` also gets :data:`DEFENSE_EXPECTED_FAILED`.
    """
    from .defense import BaseDefense

    declare = getattr(estimator, "_expected_failed_checks", None)
    out = dict(DEFENSE_EXPECTED_FAILED) if isinstance(estimator, BaseDefense) else {}
    return {**out, **(dict(declare()) if declare is not None else {})}


def fast_instance(factory, **params):
    """Build ``factory`` with its ``_test_params`` (and CPU), overridden by ``params``."""
    settings = dict(getattr(factory, "_test_params", {}))
    settings.setdefault("device", "cpu")
    settings.update(params)
    return factory(**settings)


def registered_defense_instances() -> list:
    """A fast instance of every registered defense (built-in and third-party)."""
    return [fast_instance(entry.factory) for entry in list_registrations("defense")]


def registered_purifier_instances() -> list:
    """A fast instance of every registered purifier (transformers in front of a defense)."""
    return [fast_instance(entry.factory) for entry in list_registrations("purifier")]


def parametrize_defense_checks(estimators):
    """``pytest`` decorator running scikit-learn's checks on each estimator.

    Parameters
    ----------
    estimators : list of estimators
        Usually :func:`registered_defense_instances` or your plugin's own.
    """
    return parametrize_with_checks(
        list(estimators), expected_failed_checks=expected_failed_checks
    )


def check_defense(estimator) -> list:
    """Run every scikit-learn estimator check on ``estimator``; raise on the first failure.

    Returns
    -------
    list of dict
        scikit-learn's per-check results (name, status, ...).
    """
    return check_estimator(
        estimator, expected_failed_checks=expected_failed_checks(estimator), on_fail="raise"
    )

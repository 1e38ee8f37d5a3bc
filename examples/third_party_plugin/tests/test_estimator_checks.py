"""scikit-learn's estimator checks on the plugin's defense, through robustlearn's helper."""

from robustlearn_example_plugin import NearestPrototypeClassifier

from robustlearn.estimator_checks import fast_instance, parametrize_defense_checks


@parametrize_defense_checks([fast_instance(NearestPrototypeClassifier)])
def test_sklearn_compatible(estimator, check):
    check(estimator)

"""scikit-learn's estimator checks on both estimators, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor


def _small_classifier():
    # Small and quick, but trained long enough to pass sklearn's accuracy
    # checks (check_classifiers_train asks for > 0.83 on easy blobs).
    return LotteryTicketClassifier(
        hidden_layer_sizes=(32,), max_epochs=30, batch_size=32, n_rounds=1,
        learning_rate_init=1e-2, random_state=0,
    )


def _small_regressor():
    # check_regressors_train asks for R2 > 0.5 on a small linear problem.
    return LotteryTicketRegressor(
        hidden_layer_sizes=(32,), max_epochs=30, batch_size=32, n_rounds=1,
        learning_rate_init=1e-2, random_state=0,
    )


# Every check must pass: no expected failures are listed.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [_small_classifier(), _small_regressor()],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)

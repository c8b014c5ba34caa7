"""
Quickstart: a winning ticket in a minute
========================================

The README quickstart as a script. :class:`~sklottery.LotteryTicketClassifier`
is an ordinary scikit-learn classifier whose ``fit`` runs iterative magnitude
pruning (IMP): train, prune the smallest surviving weights, rewind the
survivors to their initial values θ0 and train again, ``n_rounds`` times
(Frankle & Carbin, 2019). The fitted model is the network at the final
sparsity, so it can be scored, pipelined and grid-searched like any other
estimator.

The settings are deliberately small (a 100-unit hidden layer, 5 epochs per
round) so that the whole script, grid search included, runs in well under a
minute on two CPU cores. Run it as a script::

    python examples/quickstart.py
"""

# %%
# Data
# ----
# scikit-learn's bundled 8x8 digits: 1,797 images, 64 features, 10 classes.
# Features are standardised (the network trains badly on raw 0..16 pixels).
import time

import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklottery import LotteryTicketClassifier

t_start = time.perf_counter()

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train_s, X_test_s = scaler.transform(X_train), scaler.transform(X_test)

# %%
# One IMP run
# -----------
# Four rounds of pruning 20 % of each hidden layer's surviving weights (10 %
# of the output layer), rewinding to θ0 after each prune. ``verbose=1`` prints
# one line per training round: round 0 is the dense network.
clf = LotteryTicketClassifier(
    hidden_layer_sizes=(100,),
    max_epochs=5,
    pruning_rate=0.2,
    n_rounds=4,
    reinit="rewind",
    random_state=0,
    verbose=1,
)
t0 = time.perf_counter()
clf.fit(X_train_s, y_train)
print(f"fit: {time.perf_counter() - t0:.1f} s")

# %%
# ``rounds_`` holds one record per round; as a table it shows how the
# validation loss and accuracy evolve as the network gets sparser.
# ``early_stop_iteration`` is the iteration of minimum validation loss.
rounds = pd.DataFrame(clf.rounds_)
columns = ["round", "weights_remaining", "train_loss", "valid_loss", "valid_acc",
           "early_stop_iteration", "epochs", "seconds"]
print(rounds[columns].round(4).to_string(index=False))
print(f"\nfinal sparsity: {100 * clf.sparsity_:.1f} % of the prunable weights removed "
      f"({100 - 100 * clf.sparsity_:.1f} % left)")
print(f"test accuracy of the sparse network: {clf.score(X_test_s, y_test):.4f}")

# %%
# Grid search over the pruning schedule
# -------------------------------------
# Inside a :class:`~sklearn.pipeline.Pipeline` the scaler is refitted on every
# training fold. The search compares the *final* (sparsest) network of each
# candidate by cross-validated accuracy, so, without a constraint on
# sparsity, it tends to prefer less pruning (see
# ``examples/plot_grid_search.py`` for how to fix the sparsity).
pipe = make_pipeline(
    StandardScaler(),
    LotteryTicketClassifier(hidden_layer_sizes=(100,), max_epochs=5, random_state=0),
)
param_grid = {
    "lotteryticketclassifier__pruning_rate": [0.2, 0.5],
    "lotteryticketclassifier__n_rounds": [1, 3],
    "lotteryticketclassifier__reinit": ["rewind", "fresh"],
}
search = GridSearchCV(pipe, param_grid, cv=3)
t0 = time.perf_counter()
search.fit(X_train, y_train)
print(f"\ngrid search: {len(search.cv_results_['params'])} candidates x 3 folds "
      f"in {time.perf_counter() - t0:.1f} s")
best = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
print(f"best parameters: {best}")
print(f"best cross-validated accuracy: {search.best_score_:.4f}")
best_clf = search.best_estimator_[-1]
print(f"refitted best model: {100 - 100 * best_clf.sparsity_:.1f} % of weights left, "
      f"test accuracy {search.score(X_test, y_test):.4f}")
print(f"\ntotal time {time.perf_counter() - t_start:.1f} s")

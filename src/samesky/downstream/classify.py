"""Morphology classification on frozen embeddings, with seed 003's protocol.

Seed 003 (vision foundation models in astrophysics, §2-3): split once into train (80%) and test (20%);
train heads on 10, 30, 50 and 100% of the training labels with the test set fixed; score macro F1 (and
accuracy); repeat over seeds. Heads here:

- ``linear``: seed 003's single linear layer with a softmax and cross-entropy. Seed 003 trains it with
  Adam for 100 epochs; here the same model is fitted to convergence (scikit-learn's multinomial logistic
  regression, L-BFGS, L2 penalty C = 1) on standardised features, with class weights inversely
  proportional to the class counts (seed 003 weights its unbalanced set that way; ours has a rare merger
  class). The fit is deterministic, so at 100% of the labels the seeds agree; below it each seed draws its
  own labelled subset.
- ``whitened``: the linear head after a whitening layer (Kalapos & Gyires-Tóth 2024, which seed 003 finds
  helps): ZCA whitening fitted on the labelled subset, the covariance shrunk towards its mean eigenvalue
  (``WHITEN_SHRINK``) so that a subset smaller than the embedding's dimension stays invertible. Written by
  hand: scikit-learn's PCA whitening has no shrinkage and drops the smallest directions.
- ``mlp``: the seed-001 MLP form, one hidden layer of 32 (scikit-learn's MLPClassifier, default L2 penalty);
  fitted by L-BFGS, which scikit-learn recommends for small sets (on the mini pair it matched Adam's F1 at a
  fifth of the time); it has no class weights.

A ``chance`` row (scikit-learn's stratified DummyClassifier) gives each subset's floor.

Label fractions are nested: each seed shuffles every class's training objects once and the subsets are
prefixes of one stratified order, so the 10% subset lies inside the 30% one, and so on, and every subset
keeps the class proportions as far as its size allows (at least one object of each class).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

HEADS = ("linear", "whitened", "mlp")
WHITEN_SHRINK = 0.1


def test_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """True for the test objects: a stratified split by seed (fixed for every head, fraction and seed)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    _, test = train_test_split(idx, test_size=test_fraction, random_state=seed, shuffle=True, stratify=labels)
    out = np.zeros(len(labels), bool)
    out[test] = True
    return out


def nested_subsets(labels: np.ndarray, fractions, seed: int) -> dict[float, np.ndarray]:
    """Indices into ``labels`` (the training objects) of each label fraction: nested prefixes of one
    stratified random order, each with at least one object of every class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    # each class's members spread evenly over [0, 1) in a random order: a prefix of the sorted keys then
    # holds each class in proportion
    key = np.empty(n)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        shuffled = rng.permutation(members)
        key[shuffled] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
        key[shuffled[0]] -= 1  # one of each class leads the order, so every subset has every class
    order = np.argsort(key, kind="stable")
    n_classes = len(np.unique(labels))
    out = {}
    for f in sorted(fractions):
        if not 0 < f <= 1:
            raise ValueError(f"label fraction {f} is not in (0, 1]")
        size = min(n, max(n_classes, math.ceil(f * n)))
        out[f] = np.sort(order[:size])
    return out


def _zca(x: np.ndarray, shrink: float = WHITEN_SHRINK):
    """(mean, W) so that (x - mean) @ W has an identity covariance (of the shrunk estimate)."""
    mean = x.mean(0)
    cov = np.cov(x - mean, rowvar=False).reshape(x.shape[1], x.shape[1])
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    vals, vecs = np.linalg.eigh(cov)
    return mean, (vecs / np.sqrt(np.maximum(vals, 1e-12))) @ vecs.T


def fit_predict(head: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Fit one head on (x_train, y_train) and predict the classes of x_test."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    if head == "chance":
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy="stratified", random_state=seed).fit(x_train, y_train).predict(x_test)
    if len(np.unique(y_train)) < 2:  # one class seen: nothing to separate
        return np.full(len(x_test), y_train[0], dtype=object)
    scaler = StandardScaler().fit(x_train)
    xt, xe = scaler.transform(x_train), scaler.transform(x_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted below, not printed per fit
        if head in ("linear", "whitened"):
            if head == "whitened":
                mean, w = _zca(xt)
                xt, xe = (xt - mean) @ w, (xe - mean) @ w
            model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(xt, y_train)
        elif head == "mlp":
            model = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=500, random_state=seed)
            model.fit(xt, y_train)
        else:
            raise ValueError(f"unknown head '{head}'; known: {HEADS} and 'chance'")
    return model.predict(xe)


def scores(y_true, y_pred, classes) -> dict:
    """Macro F1 over the classes present in the test set, accuracy, and each class's F1."""
    from sklearn.metrics import accuracy_score, f1_score

    present = [c for c in classes if c in set(y_true)]
    per_class = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    out = {"macro_f1": float(np.mean(per_class)) if present else float("nan"),
           "accuracy": float(accuracy_score(y_true, y_pred))}
    out.update({f"f1_{c}": float(per_class[present.index(c)]) if c in present else float("nan") for c in classes})
    return out


def detailed_scores(y_true, y_pred, classes) -> dict:
    """``scores`` plus each class's precision and recall (seed 003's Fig. 4 and appendix B)."""
    from sklearn.metrics import precision_recall_fscore_support

    out = scores(y_true, y_pred, classes)
    present = [c for c in classes if c in set(y_true)]
    precision, recall, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    for c in classes:
        i = present.index(c) if c in present else None
        out[f"precision_{c}"] = float(precision[i]) if i is not None else float("nan")
        out[f"recall_{c}"] = float(recall[i]) if i is not None else float("nan")
    return out


def run_protocol(labels: np.ndarray, is_test: np.ndarray, fractions, seeds, fits: dict, classes,
                 scorer=scores) -> pd.DataFrame:
    """Seed 003's loop: for every seed and label fraction, each ``fits[name](train_rows, seed)`` (which
    returns its predictions for the test objects) is scored on the fixed test set; one row per (name,
    fraction, seed)."""
    labels = np.asarray(labels, dtype=object)
    train = np.flatnonzero(~is_test)
    y_test = labels[is_test]
    rows = []
    for seed in seeds:
        for fraction, subset in nested_subsets(labels[train], fractions, seed).items():
            idx = train[subset]
            for name, fit in fits.items():
                rows.append({"head": name, "label_fraction": fraction, "seed": seed, "n_train": len(idx),
                             "n_test": int(is_test.sum()), **scorer(y_test, fit(idx, seed), classes)})
    return pd.DataFrame(rows)


def classify_embedding(x: np.ndarray, labels: np.ndarray, is_test: np.ndarray, fractions, seeds, heads,
                       classes) -> pd.DataFrame:
    """Every head at every label fraction and seed on one embedding (rows of ``x`` as ``labels``), the
    chance floor included."""
    labels = np.asarray(labels, dtype=object)
    x_test = x[is_test]

    def head_fit(head):
        return lambda idx, seed: fit_predict(head, x[idx], labels[idx], x_test, seed)

    return run_protocol(labels, is_test, fractions, seeds, {h: head_fit(h) for h in ("chance", *heads)}, classes)


def summarise(table: pd.DataFrame, keys=("survey", "model")) -> pd.DataFrame:
    """Mean and spread over seeds of macro F1 and accuracy per embedding, head and label fraction."""
    group = [*keys, "head", "label_fraction"]
    extra = [c for c in ("family", "size", "params_m", "modality") if c in table.columns]
    agg = table.groupby(group + extra, sort=False, dropna=False).agg(
        n_train=("n_train", "first"), macro_f1=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"),
        accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"), seeds=("seed", "nunique"))
    return agg.reset_index()

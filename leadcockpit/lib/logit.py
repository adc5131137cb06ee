"""Regularised logistic regression and the figures that judge a score, in numpy.

Why numpy and not scikit-learn: the learner needs one model (L2-penalised logistic regression), its standard
errors (scikit-learn gives none; they come from the Fisher information, which this fit has at hand) and a few
rank statistics. That is forty lines of Newton's method; scikit-learn would bring SciPy, joblib and threadpoolctl
(~100 MB) for it. numpy itself is the one dependency, for the matrix algebra at 100k leads × a few hundred
features.
"""

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass
class Fit:
    coef: np.ndarray  # intercept first, then one per column of X
    cov: np.ndarray  # approximate covariance of coef: the inverse of the penalised Fisher information
    iterations: int
    converged: bool
    deviance: float

    @property
    def se(self):
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def fit_logistic(X, y, *, l2=1.0, max_iter=60, tol=1e-8) -> Fit:
    """Maximise the log-likelihood of y (0/1) given X minus l2/2 × |coef|² (the intercept is not penalised), by
    Newton's method (iteratively reweighted least squares) with step halving.

    The ridge keeps coefficients finite where a column separates the outcomes and where columns are collinear
    (one-hot groups with every level, beside the intercept). The covariance returned is the inverse of the
    penalised Hessian at the optimum, X'WX + l2·I: the Laplace approximation to the posterior under a
    N(0, 1/l2) prior. It is a little narrower than the unpenalised Wald covariance would be; with thousands of
    leads per column and l2 = 1 the difference is small.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    design = np.empty((n, p + 1))
    design[:, 0] = 1.0
    design[:, 1:] = X
    penalty = np.full(p + 1, float(l2))
    penalty[0] = 0.0
    base = min(max(y.mean(), 1e-6), 1 - 1e-6) if n else 0.5
    coef = np.zeros(p + 1)
    coef[0] = math.log(base / (1 - base))

    def objective(b):
        eta = design @ b
        # log(1 + e^eta) - y·eta, computed stably
        loss = np.sum(np.logaddexp(0.0, eta) - y * eta)
        return loss + 0.5 * np.sum(penalty * b * b), eta

    current, eta = objective(coef)
    converged = False
    iterations = 0
    hessian = np.diag(penalty)
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        mu = sigmoid(eta)
        weight = mu * (1 - mu)
        gradient = design.T @ (y - mu) - penalty * coef
        hessian = (design * weight[:, None]).T @ design + np.diag(penalty)
        hessian[0, 0] += 1e-9  # an all-equal outcome leaves the intercept's curvature at ~0
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:
            candidate = coef + scale * step
            value, candidate_eta = objective(candidate)
            if value <= current + 1e-12 or scale < 1e-6:
                break
            scale /= 2
        coef, eta = candidate, candidate_eta
        improvement = current - value
        current = value
        if np.max(np.abs(scale * step)) < tol or improvement < tol * (abs(current) + 1):
            converged = True
            break
    if np.max(np.abs(scale * step)) > 1e-6:
        # The last Hessian was taken before a step that mattered: take it where the fit ended.
        mu = sigmoid(eta)
        weight = mu * (1 - mu)
        hessian = (design * weight[:, None]).T @ design + np.diag(penalty)
        hessian[0, 0] += 1e-9
    cov = np.linalg.inv(hessian)
    deviance = float(2 * np.sum(np.logaddexp(0.0, eta) - y * eta))
    return Fit(coef=coef, cov=cov, iterations=iterations, converged=converged, deviance=deviance)


def roc_auc(scores, outcomes):
    """The chance that a converted lead outscores one that did not (ties count ½); None without both kinds."""
    scores = np.asarray(scores, dtype=float)
    outcomes = np.asarray(outcomes, dtype=float)
    positives = float(outcomes.sum())
    negatives = len(outcomes) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    _unique, inverse, counts = np.unique(ordered, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = (ends - counts + 1 + ends) / 2.0  # ranks from 1; ties share their average
    ranks = average_rank[inverse]
    rank_sum = float(ranks[outcomes[order] == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def auc_interval(auc, positives, negatives):
    """95 % interval of a ROC AUC by Hanley & McNeil's (1982) standard error; (None, None) without an AUC."""
    if auc is None or not positives or not negatives:
        return None, None
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    se = math.sqrt(max(variance, 0.0))
    return max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)


def wilson(successes, n, z=Z95):
    """95 % Wilson score interval of a rate; (None, None) for n = 0."""
    if not n:
        return None, None
    rate = successes / n
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def deciles(scores, outcomes, ids=None):
    """Leads ranked by score (highest first; equal scores by id) and cut into ten groups of (nearly) equal size:
    per decile n, converted, rate with its Wilson interval, lift (rate over the overall rate), cumulative lift,
    and the score range."""
    scores = np.asarray(scores, dtype=float)
    outcomes = np.asarray(outcomes, dtype=float)
    n = len(scores)
    if not n:
        return []
    ids = np.arange(n) if ids is None else np.asarray(ids)
    order = np.lexsort((ids, -scores))
    base = outcomes.mean()
    bounds = [round(n * k / 10) for k in range(11)]
    result, seen, seen_positive = [], 0, 0.0
    for k in range(10):
        part = order[bounds[k] : bounds[k + 1]]
        if not len(part):
            continue
        size = len(part)
        positives = float(outcomes[part].sum())
        seen += size
        seen_positive += positives
        low, high = wilson(positives, size)
        result.append(
            {
                "decile": k + 1,
                "n": size,
                "positives": int(positives),
                "rate": positives / size,
                "rate_low": low,
                "rate_high": high,
                "lift": (positives / size) / base if base else None,
                "cumulative_lift": (seen_positive / seen) / base if base else None,
                "score_min": float(scores[part].min()),
                "score_max": float(scores[part].max()),
            }
        )
    return result


def calibration(predicted, outcomes, edges):
    """Per band of predicted probability [edges[i], edges[i+1]) (the last band closed): n, the mean predicted
    rate, the observed rate with its Wilson interval."""
    predicted = np.asarray(predicted, dtype=float)
    outcomes = np.asarray(outcomes, dtype=float)
    bands = []
    for index in range(len(edges) - 1):
        low, high = edges[index], edges[index + 1]
        last = index == len(edges) - 2
        mask = (predicted >= low) & ((predicted <= high) if last else (predicted < high))
        size = int(mask.sum())
        positives = float(outcomes[mask].sum())
        rate_low, rate_high = wilson(positives, size)
        bands.append(
            {
                "from": low,
                "to": high,
                "n": size,
                "positives": int(positives),
                "predicted": float(predicted[mask].mean()) if size else None,
                "observed": positives / size if size else None,
                "observed_low": rate_low,
                "observed_high": rate_high,
            }
        )
    return bands

"""Estimators that policies compose: online ridge (Gaussian posterior) and logistic GLM
(Laplace posterior); shared linear math (widths, samples, TS probabilities) in ``linear``
and the ridge update in ``ridge``, both also over a leading batch axis (the replicas of
:mod:`scarce.sim.replicated`)."""

from scarce.models.glm import LogisticRegression
from scarce.models.linear import (
    cholesky_factor,
    gaussian_argmax_probabilities,
    gaussian_argmax_probability_of,
    predict,
    predict_mean,
    predict_variance,
    sample_scores,
)
from scarce.models.ridge import RidgeRegression, solve_posterior
from scarce.models.row_step import rank_one_update

__all__ = [
    "LogisticRegression",
    "RidgeRegression",
    "cholesky_factor",
    "gaussian_argmax_probabilities",
    "gaussian_argmax_probability_of",
    "predict",
    "predict_mean",
    "predict_variance",
    "rank_one_update",
    "sample_scores",
    "solve_posterior",
]

"""Estimators that policies compose: online ridge (Gaussian posterior) and logistic GLM
(Laplace posterior); shared linear math (widths, samples, TS probabilities) in ``linear``."""

from scarce.models.glm import LogisticRegression
from scarce.models.linear import (
    gaussian_argmax_probabilities,
    predict,
    predict_mean,
    predict_variance,
    sample_scores,
)
from scarce.models.ridge import RidgeRegression

__all__ = [
    "LogisticRegression",
    "RidgeRegression",
    "gaussian_argmax_probabilities",
    "predict",
    "predict_mean",
    "predict_variance",
    "sample_scores",
]

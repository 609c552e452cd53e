"""Simulators and datasets: synthetic generators, supervised-to-bandit conversion, loaders
for bundled real data. Each environment knows its oracle when it has one."""

from scarce.envs.base import Environment
from scarce.envs.datasets import (
    DATASETS,
    load_breast_cancer,
    load_dataset,
    load_digits,
    load_image_segments,
    load_iris,
    load_letter,
    load_mnist_small,
    load_wine,
)
from scarce.envs.registry import ENV_REGISTRY, ENVIRONMENTS, get_envs, make_env, register_env
from scarce.envs.supervised import SupervisedEnv
from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.envs.wheel import WheelEnv

__all__ = [
    "DATASETS",
    "ENVIRONMENTS",
    "ENV_REGISTRY",
    "Environment",
    "LinearGaussianEnv",
    "LogisticEnv",
    "SupervisedEnv",
    "WheelEnv",
    "get_envs",
    "load_breast_cancer",
    "load_dataset",
    "load_digits",
    "load_image_segments",
    "load_iris",
    "load_letter",
    "load_mnist_small",
    "load_wine",
    "make_env",
    "register_env",
]

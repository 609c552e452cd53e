"""Neural contextual bandits as a capability: the policies (:mod:`scarce.policies.neural`,
registered with the core ones), the wheel bandit (:class:`~scarce.envs.WheelEnv`) and the
``neural`` experiment (:mod:`scarce.neural.experiments`). The shared network pieces are
:mod:`scarce.models.mlp` and :mod:`scarce.models.neural_linear`. Needs the ``neural`` extra
(PyTorch), imported on first use."""

from scarce.envs.wheel import WheelEnv
from scarce.models.mlp import MLP, NetworkConfig, OnlineNetwork, ReplayBuffer, RetrainSchedule
from scarce.models.neural_linear import NeuralLinearRegression
from scarce.policies.neural import DropoutTS, EnsembleTS, NeuralLinearTS, NeuralLinearUCB, NeuralUCB

__all__ = [
    "MLP",
    "DropoutTS",
    "EnsembleTS",
    "NetworkConfig",
    "NeuralLinearRegression",
    "NeuralLinearTS",
    "NeuralLinearUCB",
    "NeuralUCB",
    "OnlineNetwork",
    "ReplayBuffer",
    "RetrainSchedule",
    "WheelEnv",
]

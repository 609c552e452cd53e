"""Simulators and datasets: synthetic generators, supervised-to-bandit conversion, loaders
for bundled real data. Each environment knows its oracle when it has one."""

from scarce.envs.base import Environment

__all__ = ["Environment"]

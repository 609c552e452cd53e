"""Structured Thompson sampling: mixed-effect TS (meTS), hierarchical TS, and structure
learned offline (matrix factorisation + Gaussian mixture)."""

from scarce.structured.envs import MixedEffectEnv, MovieLensEnv
from scarce.structured.mets import HierarchicalTS, MixedEffectTS, mixing_matrices

__all__ = ["HierarchicalTS", "MixedEffectEnv", "MixedEffectTS", "MovieLensEnv", "mixing_matrices"]

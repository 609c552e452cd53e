"""scarce: deciding, one case at a time, who or what gets a scarce resource."""

__version__ = "0.1.0"

from scarce.core import Decision, Policy, load  # noqa: E402

__all__ = ["Decision", "Policy", "load", "__version__"]

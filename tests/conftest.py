"""Suite-wide settings: hypothesis runs derandomised, so every CI run tests the same examples."""

from hypothesis import settings

settings.register_profile("scarce", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("scarce")

"""``python -m scarce``: the same commands as the ``scarce`` console script."""

from scarce.cli import main

main()

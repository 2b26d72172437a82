"""``python -m bascule.cli``."""

from bascule.cli import main

main()

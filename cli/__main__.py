"""`python -m pulsaride.cli` runs `pt`."""

from .main import main

main()

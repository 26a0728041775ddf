"""``python -m nltool`` = ``nltool``."""

from nltool.app.cli import main

main()

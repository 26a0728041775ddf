"""``python -m nltool.training ...`` = ``nltool train ...``: the entry point for ``torchrun``.

    torchrun --nproc-per-node 2 -m nltool.training --data DIR --out RUN [train options]

An entry point belongs to the application layer wherever it sits, so it may import the CLI.
"""

import sys

from nltool.app.cli import app

app(["train", *sys.argv[1:]], prog_name="python -m nltool.training")

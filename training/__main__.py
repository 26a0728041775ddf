"""``python -m training ...`` = ``nltool train ...``: the entry point for ``torchrun``.

    torchrun --nproc-per-node 2 -m training --data DIR --out RUN [train options]
"""

import sys

from nltool.cli import app

app(["train", *sys.argv[1:]], prog_name="python -m training")

"""Start-up cost of the ``nltool`` command: whole-process seconds for ``--help`` of every command,
beside ``python -c "import torch"`` (what every command paid before the CLI imported lazily).

    python -m benchmarks.startup [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def seconds(command: list[str], repeats: int) -> float:
    """Median wall-clock seconds of ``command`` over ``repeats`` runs (output discarded)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    nltool = shutil.which("nltool") or sys.exit("nltool is not on the PATH: pip install -e .")
    commands = ["", "info", "demo", "predict", "data synth", "train", "evaluate", "export", "package", "client"]
    reference = seconds([sys.executable, "-c", "import torch"], args.repeats)
    print(f"# median of {args.repeats} whole-process runs; python -c 'import torch': {reference:.2f} s")
    print("| command | seconds | vs import torch |")
    print("|---|---|---|")
    for command in commands:
        took = seconds([nltool, *command.split(), "--help"], args.repeats)
        print(f"| nltool {command + ' ' if command else ''}--help | {took:.2f} | {took / reference:.2f}× |")


if __name__ == "__main__":
    main()

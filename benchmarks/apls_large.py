"""Time and peak memory of the standard APLS on a 2 km × 2 km city tile: nltool against CosmiQ's reference.

    python -m benchmarks.apls_large --tile 2000 --blocks 40 100 [--reference DIR --python PY]

Writes a city-shaped truth/proposal pair (``benchmarks.apls_fixtures``, ``--blocks`` the street grid's block
sides in metres) and scores it in a fresh process with ``python -m nltool apls`` (SpaceNet's standard, the
default), and, given the reference's folder and interpreter, with CosmiQ's apls.py as its main() runs it
(``benchmarks.apls_reference``'s driver). For each: wall time, peak RSS of that process (imports
included) and the three APLS numbers, then the ratios. Truths of 500 nodes or more are scored on a random
sample of 500 nodes per graph in both (seeded differently), so their numbers agree only statistically.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.apls_fixtures import Pair, _mix, write_pair

REPO = Path(__file__).resolve().parent.parent


def measured(command: list[str]) -> tuple[float, float, str]:
    """Run a command; its wall seconds, peak RSS (MiB, that process alone) and stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"{' '.join(command[:4])}... failed:\n{err.read()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile", type=float, default=2000.0, help="tile side (m)")
    parser.add_argument("--blocks", type=float, nargs=2, default=(40.0, 100.0), metavar=("MIN", "MAX"),
                        help="block sides of the street grid (m)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=Path, help="folder of the patched reference apls.py (optional)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with the reference's dependencies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        name = "tile"
        damage = _mix(gaps=10, spurs=10, detours=6, missing=8, extra=8, shifted=4, junctions=6)
        truth, proposal = write_pair(Pair(name, args.seed, damage, args.tile, blocks=tuple(args.blocks)), Path(tmp))
        report = Path(tmp, "nltool.json")
        runs = {}
        seconds, rss, _ = measured([sys.executable, "-m", "nltool", "apls", "--truth", str(truth), "--proposal",
                                    str(proposal), "--json", str(report)])
        mine = json.loads(report.read_text())
        runs["nltool"] = (seconds, rss, mine["apls"], mine["truth_to_proposal"], mine["proposal_to_truth"])
        print(f"# {args.tile:.0f} m tile, blocks {args.blocks[0]:.0f}-{args.blocks[1]:.0f} m, seed {args.seed}: "
              f"{mine['truth_control_points']} truth / {mine['proposal_control_points']} proposal control points, "
              f"{mine['truth_paths']} + {mine['proposal_paths']} paths")
        if args.reference:
            seconds, rss, out = measured([args.python, "-m", "benchmarks.apls_reference", "--reference",
                                          str(args.reference), "--data", tmp, "--driver", name])
            ref = json.loads(out)[name]
            runs["reference"] = (seconds, rss, ref["apls"], ref["apls_gt_onto_prop"], ref["apls_prop_onto_gt"])
    print(f"{'':<10} {'seconds':>8} {'peak MiB':>9} {'APLS':>7} {'t->p':>7} {'p->t':>7}")
    for label, (seconds, rss, total, forward, backward) in runs.items():
        print(f"{label:<10} {seconds:>8.1f} {rss:>9.0f} {total:>7.4f} {forward:>7.4f} {backward:>7.4f}")
    if "reference" in runs:
        print(f"reference / nltool: time {runs['reference'][0] / runs['nltool'][0]:.1f}x, "
              f"peak RSS {runs['reference'][1] / runs['nltool'][1]:.1f}x")


if __name__ == "__main__":
    main()

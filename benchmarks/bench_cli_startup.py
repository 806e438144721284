"""How long the seglab command takes to start: `seglab --help` and `seglab <cmd> --help` (target < 1 s).

    python benchmarks/bench_cli_startup.py [--repeats 5]

Prints the median wall time of each command in a fresh interpreter, beside `python -c "import torch"`
(what the help would cost if it imported torch) and a bare `python -c pass`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [["--help"], ["--version"], ["train", "--help"], ["eval", "--help"], ["predict", "--help"],
            ["data", "check", "--help"], ["models", "--help"], ["bench", "--help"]]


def wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':40s} {'median s':>9s}")
    for label, argv in [("python -c pass", [sys.executable, "-c", "pass"]),
                        ("python -c 'import torch'", [sys.executable, "-c", "import torch"])]:
        print(f"{label:40s} {wall(argv, args.repeats):9.2f}")
    for command in COMMANDS:
        seconds = wall([sys.executable, "-m", "seglab", *command], args.repeats)
        print(f"{'seglab ' + ' '.join(command):40s} {seconds:9.2f}{'' if seconds < 1 else '  (over 1 s)'}")


if __name__ == "__main__":
    main()

"""Start-up benchmark: cold wall time of `ftschema validate` and `ftrun --dry-run` on a typical config.

Each command runs in a fresh interpreter several times; the table shows the median, the best run and the ratio to
the target. Run: python -m ftconfig.tools.bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftconfig.tools._paths import EXAMPLES_DIR, REPO_ROOT

__all__ = ["main"]

VALIDATE_TARGET_S = 0.3


def _wall_times(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def _script(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(f"{name} is not installed next to {sys.executable}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    config = str(EXAMPLES_DIR / "seed-shaped.yaml")
    rows = [
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"], None),
        (
            "ftschema validate seed-shaped.yaml",
            [_script("ftschema"), "validate", "-q", config],
            VALIDATE_TARGET_S,
        ),
        (
            "ftrun --dry-run quickstart.yaml",
            # A fresh output_dir: the guard refuses a dry run over a finished run (e.g. after make quickstart).
            [
                _script("ftrun"),
                str(EXAMPLES_DIR / "quickstart.yaml"),
                "--dry-run",
                "--json",
                "--set",
                f"training_args.output_dir={tempfile.mkdtemp(prefix='ftconfig-bench-startup-')}/out",
            ],
            None,
        ),
    ]
    print(f"{'command':<40} {'median s':>9} {'best s':>8} {'target s':>9} {'median/target':>14}")
    for label, command, target in rows:
        times = _wall_times(
            command, args.runs if target is not None or "pass" in label else max(2, args.runs // 3)
        )
        median = statistics.median(times)
        ratio = f"{median / target:.2f}" if target else "-"
        print(f"{label:<40} {median:>9.3f} {min(times):>8.3f} {target or '-':>9} {ratio:>14}")


if __name__ == "__main__":
    main()

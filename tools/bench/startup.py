"""Start-up benchmark: cold wall and CPU time of `ftschema validate` and `ftrun --dry-run` on typical configs.

Each command runs in a fresh interpreter several times, interleaved with the import floor it is compared to
(`python -c "import torch, transformers"`), so that both see the same machine load; the table shows medians, the
best run and, for the dry run, its cost over that floor (target: at most 2.5 s). The dry run plans from a warm
prepared-data cache (a first, untimed run fills it). Run: python -m ftconfig.tools.bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftconfig.tools._paths import EXAMPLES_DIR, REPO_ROOT
from ftconfig.tools.bench._common import machine_line

__all__ = ["main"]

VALIDATE_TARGET_S = 0.3
DRY_RUN_OVER_FLOOR_TARGET_S = 2.5


@dataclass
class Timings:
    label: str
    command: list[str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run_once(self) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(self.command, cwd=REPO_ROOT, check=True, capture_output=True)
        self.wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def _script(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(f"{name} is not installed next to {sys.executable}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    output_dir = f"{tempfile.mkdtemp(prefix='ftconfig-bench-startup-')}/out"
    rows = [
        Timings("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
        Timings(
            "ftschema validate seed-shaped.yaml",
            [_script("ftschema"), "validate", "-q", str(EXAMPLES_DIR / "seed-shaped.yaml")],
        ),
        Timings(
            'python -c "import torch, transformers"', [sys.executable, "-c", "import torch, transformers"]
        ),
        # A fresh output_dir: the guard refuses a dry run over a finished run (e.g. after make quickstart).
        Timings(
            "ftrun --dry-run quickstart.yaml",
            [
                _script("ftrun"),
                str(EXAMPLES_DIR / "quickstart.yaml"),
                "--dry-run",
                "--json",
                "--set",
                f"training_args.output_dir={output_dir}",
            ],
        ),
    ]
    subprocess.run(rows[-1].command, cwd=REPO_ROOT, check=True, capture_output=True)  # warm the data cache
    for _ in range(args.runs):
        for row in rows:
            row.run_once()
    floor, dry_run = rows[2], rows[3]
    print(machine_line() + f" · {args.runs} runs each, interleaved (fresh process each; medians)")
    print()
    print(f"{'command':<40} {'wall s':>7} {'best s':>7} {'CPU s':>6}  {'vs target':<28}")
    for row in rows:
        wall, cpu = statistics.median(row.wall), statistics.median(row.cpu)
        verdict = ""
        if row is rows[1]:
            verdict = f"{wall / VALIDATE_TARGET_S:.2f} of {VALIDATE_TARGET_S} s"
        if row is dry_run:
            over_wall = wall - statistics.median(floor.wall)
            over_cpu = cpu - statistics.median(floor.cpu)
            verdict = f"floor +{over_wall:.2f} s wall, +{over_cpu:.2f} s CPU (target +{DRY_RUN_OVER_FLOOR_TARGET_S})"
        print(f"{row.label:<40} {wall:>7.3f} {min(row.wall):>7.3f} {cpu:>6.2f}  {verdict}")


if __name__ == "__main__":
    main()

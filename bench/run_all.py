"""Run every benchmark in bench/ (files named bench_*.py), one after the other.

Each benchmark prints its own lines in the project's format:
``NAME: ratio=X.XX (imageport A s, REF B s) peak_rss=N MiB``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    benches = sorted(Path(__file__).parent.glob("bench_*.py"))
    if not benches:
        print("no benchmarks yet")
        return 0
    failed = 0
    for bench in benches:
        failed |= subprocess.run([sys.executable, str(bench)]).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main())

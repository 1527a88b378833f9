"""`python -m detectors`: the benchmark's command line (detectors.benchmark.cli)."""

import sys

from detectors.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`jejak` CLI entry point with bench.common.apply_pool_workaround() applied."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

common.apply_pool_workaround()

from jejak.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "jejak"
    main()

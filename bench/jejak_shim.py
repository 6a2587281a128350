"""`jejak` CLI entry point for bench subprocesses.

It used to apply a PostgreSQL pool workaround; since ad8b0cc (no
pool_open_timeout in store/datastore.py) it just runs `jejak.cli.main`.
"""

import sys

from jejak.cli import main

if __name__ == "__main__":
    sys.argv[0] = "jejak"
    main()

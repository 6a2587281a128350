"""`python -m jejak.ingest_worker`: the child process of `jejak.preparer.PreparerPool`."""

from jejak.preparer import _worker_main

if __name__ == "__main__":
    _worker_main()

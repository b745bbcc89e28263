"""The calculator from a script, blocking.  .venv/bin/python examples/calculator/client_blocking.py tcp:127.0.0.1:8800"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import broker  # noqa: E402
import broker.blocking  # noqa: E402


def main(endpoint: str) -> None:
    with broker.blocking.connect(endpoint, timeout=10) as root:
        print("add(1, 2) =", root.call_remote("add", 1, 2))
        memory = root.call_remote("memory")  # a reference only this client holds
        memory.call_remote("store", 42)
        print("memory recalls", memory.call_remote("recall"))
        try:
            root.call_remote("divide", 1, 0)
        except broker.RemoteError as exc:
            print("divide(1, 0) failed:", exc.remote_type, "-", exc.message)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(sys.argv[1] if len(sys.argv) > 1 else "tcp:127.0.0.1:8800")

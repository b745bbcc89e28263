"""The calculator from Deferred-style code.  .venv/bin/python examples/calculator/client_deferred.py tcp:127.0.0.1:8800"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import broker  # noqa: E402
from net.defer import Deferred  # noqa: E402
from net.react import react  # noqa: E402
from shared import Vector  # noqa: E402


def main(reactor: Any, endpoint: str = "tcp:127.0.0.1:8800") -> Deferred[Any]:
    """The whole conversation as one Deferred; ``net.react`` stops the reactor when it fires."""

    def got_root(root: broker.RemoteReference) -> Any:
        d = root.call_remote("add", 1, 2)
        d.add_callback(lambda result: print("add(1, 2) =", result))
        d.add_callback(lambda _: root.call_remote("scale", Vector(1, 2), 3))
        d.add_callback(lambda v: print("scale(Vector(1, 2), 3) =", v))
        d.add_callback(lambda _: root.call_remote("divide", 1, 0))
        d.add_errback(lambda f: print("divide(1, 0) failed:", f.value))
        return d

    d = broker.connect(reactor, endpoint)
    d.add_callback(got_root)
    return d  # a failure to connect fails it: react prints it and exits 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    react(main)

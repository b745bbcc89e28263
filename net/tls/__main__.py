"""``python -m net.tls make-dev-certs DIR [--hosts localhost,127.0.0.1]``: development certificates."""

from __future__ import annotations

import argparse
import sys

from .devcerts import DEFAULT_HOSTS, make_dev_certs

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m net.tls", description="TLS helpers for pbroker.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser(
        "make-dev-certs", help="write a development CA, server and client certificate (never for production)")
    make.add_argument("directory", help="where to write ca.pem, ca.key, server.pem, server.key, client.pem, client.key")
    make.add_argument("--hosts", default=",".join(DEFAULT_HOSTS),
                      help="comma-separated names/IPs for the server certificate (default: %(default)s)")
    args = parser.parse_args(argv)
    paths = make_dev_certs(args.directory, hosts=[h for h in args.hosts.split(",") if h.strip()])
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

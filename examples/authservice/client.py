"""Log in to the notes service as USER, add notes or board posts, and show what USER sees.

    PBROKER_PASSWORD=... .venv/bin/python examples/authservice/client.py alice --note "buy milk" --post hello
    printf '%s\\n' "$PW" | .venv/bin/python examples/authservice/client.py alice

The password comes from ``PBROKER_PASSWORD`` or one line of stdin (asked for on a terminal); it is
never an argument, where ``ps`` would show it, and never crosses the wire (SCRAM).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import broker.blocking
from cred.credentials import UsernamePassword
from cred.error import LoginFailed
from cred.prompt import read_password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("user")
    parser.add_argument("--certs", default="certs", help="directory with ca.pem (default %(default)s)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--note", action="append", default=[], help="add a private note (repeatable)")
    parser.add_argument("--post", action="append", default=[], help="post to the shared board (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    endpoint = f"tls:{args.host}:{args.port}:ca={Path(args.certs) / 'ca.pem'}"
    credentials = UsernamePassword(args.user, read_password(args.user))
    try:
        with broker.blocking.login(endpoint, credentials, timeout=30) as me:
            for note in args.note:
                me.call_remote("add_note", note)
            for text in args.post:
                me.call_remote("post", text)
            print(f"{args.user}'s notes: {me.call_remote('list_notes')}")
            print(f"board as {args.user} sees it: {me.call_remote('board').call_remote('summary')}")
    except LoginFailed as exc:
        print(f"{args.user}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

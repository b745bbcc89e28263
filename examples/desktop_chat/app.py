"""``python -m examples.desktop_chat``: the options, the Qt application, the reactor on Qt's loop.

    python -m examples.desktop_chat [--broker tcp:127.0.0.1:8800 --user alice]
                                    [--irc tcp:127.0.0.1:6667 --nick bob] [--join lobby ...]

Each account named on the command line logs in at once, with its password from the environment
(``PBROKER_PASSWORD`` for the broker account, ``PBROKER_IRC_PASSWORD`` for the IRC one); an account
whose password is not there opens the login dialog, filled in. With no account at all the login
dialog opens empty. ``--join`` rooms are joined by every account once it is connected.

The reactor is :func:`net.qtsupport.qt_reactor`: pbroker's asyncio reactor on a qasync loop that
is Qt's own, so the window, the broker connection and the IRC connection share one thread.
Closing the window stops the reactor; its shutdown trigger logs every account out first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from net import qtsupport

from .accounts import AccountSettings
from .window import ChatWindow

__all__ = ["main", "parse_args", "accounts_from"]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.desktop_chat",
                                     description="A desktop chat client: the chat example's server over "
                                                 "the broker and over IRC, in one window.")
    parser.add_argument("--broker", metavar="ENDPOINT",
                        help="the chat server's broker endpoint, e.g. tcp:127.0.0.1:8800")
    parser.add_argument("--user", help="the broker account's user name")
    parser.add_argument("--irc", metavar="ENDPOINT", help="the chat server's IRC endpoint, e.g. tcp:127.0.0.1:6667")
    parser.add_argument("--nick", help="the IRC account's nick (the account name)")
    parser.add_argument("--join", action="append", default=[], metavar="ROOM",
                        help="a room every account joins once connected (repeatable)")
    parser.add_argument("--test-hook", action="store_true",
                        help="print what the window shows on stdout and take commands on stdin (testhook.py)")
    args = parser.parse_args(list(argv))
    if bool(args.broker) != bool(args.user):
        parser.error("--broker and --user go together")
    if bool(args.irc) != bool(args.nick):
        parser.error("--irc and --nick go together")
    return args


def accounts_from(args: argparse.Namespace) -> list[tuple[AccountSettings, bool]]:
    """Each account of the command line, and whether its password was in the environment."""
    found = []
    if args.broker:
        password = os.environ.get("PBROKER_PASSWORD")
        found.append((AccountSettings("broker", args.broker, args.user, password or ""), password is not None))
    if args.irc:
        password = os.environ.get("PBROKER_IRC_PASSWORD")
        found.append((AccountSettings("irc", args.irc, args.nick, password or ""), password is not None))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication(sys.argv[:1])
    app.setApplicationName("pbroker chat")
    reactor = qtsupport.qt_reactor(app)
    try:
        window = ChatWindow(reactor, reactor.loop, args.join)
        reactor.add_system_event_trigger("before", "shutdown", window.goodbye)
        hook = None
        if args.test_hook:
            from .testhook import TestHook

            hook = TestHook(window, reactor)
        window.show()
        accounts = accounts_from(args)

        def start() -> None:
            if hook is not None:
                hook.shown()
            for settings, complete in accounts:
                if complete:
                    window.add_account(settings)
                else:
                    window.open_login_dialog(settings)
            if not accounts:
                window.open_login_dialog()

        reactor.call_when_running(start)
        qtsupport.run(app, reactor)
    finally:
        reactor.close()
    return 0

"""The chat server as one service tree, for the runner::

    PYTHONPATH=examples .venv/bin/pbroker serve chat.app:service --listen tcp:8800 -- \\
        --irc tcp:6667 --web tcp:8080 --db chat.sqlite

:func:`service` is what ``pbroker serve`` calls with its ``AppContext``. The tree, started in this
order and stopped in reverse (so listeners close before the database does):

1. the ``net.adbapi.ConnectionPool`` on the SQLite file;
2. :class:`ChatStartup`: creates the tables, loads the stored rooms into the model (stopping it
   waits for the last history writes);
3. one IRC listener per ``--irc`` endpoint (``tcp:6667``, ``tls:6697:cert=...:key=...``);
4. the broker, a ``broker.service.BrokerService`` serving the cred Portal on each ``--listen``;
5. the web signup pages on ``--web``, if ``examples/chat/web.py`` is there.

One user database (``cred.sqlstore.SQLUserDatabase``, SCRAM verifiers) behind all three: the
portal's checker for the broker, ``check_password`` for IRC, ``add_user`` for the web signup.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.service import BrokerService
from cred.portal import Portal
from net.adbapi import ConnectionPool
from net.defer import Deferred, DeferredList, ensure_deferred
from net.service import IService, MultiService, Service, StreamServerService

from .irc import IRCFactory, IRCLimits
from .model import ChatModel
from .pb import BrokerRooms, ChatRealm
from .store import ChatStore

__all__ = ["service", "build", "parse_options", "ChatOptions", "ChatServer", "ChatStartup", "IRCService"]

log = logging.getLogger(__name__)


class _Context(Protocol):
    """The part of ``broker.runner.AppContext`` this app uses."""

    reactor: Any
    listen: list[str]
    argv: list[str]
    log: logging.Logger
    state_dir: str | None


@dataclass
class ChatOptions:
    irc: list[str] = field(default_factory=list)
    web: str | None = None
    db: str = "chat.sqlite"
    history: int = 20
    server_name: str = "chat.pbroker"
    motd: str = "Welcome to the pbroker chat server."


def parse_options(argv: Sequence[str]) -> ChatOptions:
    """The app's own options, after ``--`` on the ``pbroker serve`` command line."""
    parser = argparse.ArgumentParser(
        prog="pbroker serve chat.app:service ... --",
        description="The pbroker chat server: IRC, the broker and web signup on one user database.")
    parser.add_argument("--irc", action="append", default=[], metavar="ENDPOINT",
                        help="an IRC listener, e.g. tcp:6667 or tls:6697:cert=server.pem:key=server.key (repeatable)")
    parser.add_argument("--web", metavar="ENDPOINT", help="the signup pages, e.g. tcp:8080")
    parser.add_argument("--db", default="chat.sqlite", metavar="PATH",
                        help="the SQLite file (relative paths are under --state-dir) (default %(default)s)")
    parser.add_argument("--history", type=int, default=20, metavar="N",
                        help="messages per room kept and shown on join (default %(default)s)")
    parser.add_argument("--server-name", default="chat.pbroker", help="the IRC server name (default %(default)s)")
    parser.add_argument("--motd", default=ChatOptions.motd, help="the IRC message of the day")
    args = parser.parse_args(list(argv))
    if args.history < 0:
        parser.error("--history must be 0 or more")
    return ChatOptions(args.irc, args.web, args.db, args.history, args.server_name, args.motd)


class ChatStartup(Service):
    """Tables and stored rooms, before any listener accepts a client; history flushed at stop."""

    name: str | None = "chat-startup"

    def __init__(self, server: ChatServer) -> None:
        self.server = server

    def start_service(self) -> Deferred[None]:
        Service.start_service(self)
        server = self.server

        async def start() -> None:
            if server.users is not None and hasattr(server.users, "create_table"):
                await server.users.create_table()
            await server.store.create_tables()
            count = await server.store.load_into(server.model)
            log.info("chat: %d rooms loaded from the database", count)

        return ensure_deferred(start())

    def stop_service(self) -> Deferred[None]:
        Service.stop_service(self)
        return self.server.store.flush()


class IRCService(StreamServerService):
    """An IRC listener that, when stopped, also says goodbye to its connected clients."""

    factory: IRCFactory

    def stop_service(self) -> Deferred[None]:
        closing = []
        for connection in list(self.factory.connections):
            if connection.transport is not None and not connection.closing:
                connection.close("Server shutting down")
        stopped = super().stop_service()
        closing.append(stopped)
        return DeferredList(closing).add_callback(lambda _: None)


@dataclass
class ChatServer:
    """Everything :func:`build` made, for tests and the manhole (``app``)."""

    model: ChatModel
    store: ChatStore
    users: Any
    portal: Portal
    realm: ChatRealm
    pool: ConnectionPool
    irc_factory: IRCFactory
    irc_services: list[IRCService]
    broker_services: list[BrokerService]
    web_services: list[IService]
    service: MultiService


def _open_users(pool: ConnectionPool, iterations: int | None) -> Any:
    from cred.sqlstore import SQLUserDatabase

    if iterations is None:
        return SQLUserDatabase(pool)
    return SQLUserDatabase(pool, iterations=iterations)


def build(reactor: Any, options: ChatOptions, listen: Sequence[str] = (), *,
          state_dir: str | None = None, limits: IRCLimits | None = None, users: Any = None,
          iterations: int | None = None) -> ChatServer:
    """The whole server, not yet started: ``server.service.start_service()`` starts it.

    ``users`` replaces the SQL user database (any checker with ``check_password``);
    ``iterations`` sets the PBKDF2 cost of new verifiers (tests use cred.scram.MIN_ITERATIONS).
    """
    path = options.db
    if path != ":memory:" and not os.path.isabs(path) and state_dir:
        path = os.path.join(state_dir, path)
    pool = ConnectionPool("sqlite3", path, reactor=reactor)
    pool.name = "chat-db"
    if users is None:
        users = _open_users(pool, iterations)
    store = ChatStore(pool, history=options.history)
    model = ChatModel(history=options.history, observers=[store])
    realm = ChatRealm(model, BrokerRooms())
    portal = Portal(realm, [users])
    irc_factory = IRCFactory(reactor, model, users, server_name=options.server_name, limits=limits,
                             motd=options.motd)
    top = MultiService(name="chat")
    top.add_service(pool)
    server = ChatServer(model, store, users, portal, realm, pool, irc_factory, [], [], [], top)
    top.add_service(ChatStartup(server))
    for endpoint in options.irc:
        irc = IRCService(reactor, endpoint, irc_factory)
        irc.name = f"irc {endpoint}"
        server.irc_services.append(irc)
        top.add_service(irc)
    for endpoint in listen:
        pb = BrokerService(reactor, endpoint, portal)
        pb.name = f"broker {endpoint}"
        server.broker_services.append(pb)
        top.add_service(pb)
    if options.web:
        web = _web_service(reactor, options.web, server)
        if web is not None:
            server.web_services.append(web)
            top.add_service(web)
    return server


def _web_service(reactor: Any, endpoint: str, server: ChatServer) -> IService | None:
    """The WEB part (``examples/chat/web.py``'s ``web_service(reactor, endpoint, store)``), if present."""
    package = __name__.rpartition(".")[0]
    try:
        web = importlib.import_module(f"{package}.web")
    except ImportError as exc:
        log.warning("chat: --web %s ignored: the web interface is not available (%s)", endpoint, exc)
        return None
    options: dict[str, Any] = {}
    help_class = getattr(web, "LoginHelp", None)
    if help_class is not None:  # the success page says where to log in, when we can tell
        irc = [address for s in server.irc_services if (address := _client_address(s.endpoint, "")) is not None]
        pb = [address for s in server.broker_services if (address := _client_address(s.endpoint, "tcp:")) is not None]
        options["login_help"] = help_class(irc=irc[0] if irc else None, broker=pb[0] if pb else None)
    made: IService = web.web_service(reactor, endpoint, server.users, **options)
    return made


def _client_address(endpoint: str, prefix: str) -> str | None:
    """``HOST:PORT`` a client uses for a ``tcp:``/``tls:`` server endpoint with a fixed port
    (the interface, else this host's name); None for ``tcp:0`` or a Unix socket."""
    import socket

    from net.endpoints import parse

    try:
        kind, args, kwargs = parse(endpoint)
    except ValueError:
        return None
    if kind not in ("tcp", "tls") or not args or args[0] in ("0", ""):
        return None
    host = kwargs.get("interface") or socket.getfqdn()
    if host in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"{prefix}{host}:{args[0]}"


def service(ctx: _Context) -> MultiService:
    """``pbroker serve chat.app:service --listen ENDPOINT -- [--irc ENDPOINT] [--web ENDPOINT] [--db PATH]``."""
    options = parse_options(ctx.argv)
    server = build(ctx.reactor, options, ctx.listen, state_dir=ctx.state_dir)
    ctx.log.info("chat: IRC on %s, broker on %s, web on %s, database %s",
                 ", ".join(options.irc) or "nothing", ", ".join(ctx.listen) or "nothing",
                 options.web or "nothing", options.db)
    server.service.app = server  # type: ignore[attr-defined]
    return server.service

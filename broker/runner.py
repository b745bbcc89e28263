"""``pbroker``: serve an application (twistd's job), or open a manhole console into one.

    pbroker serve MODULE:OBJECT [--listen ENDPOINT]... [options] [-- APP ARGS...]
    pbroker manhole ENDPOINT

OBJECT (an attribute of the imported MODULE) is a ``broker.Root``, a ``cred.portal.Portal``,
an :class:`~net.service.IService`, or a callable taking an :class:`AppContext` and returning
one of those three. A Root or a Portal is served on every ``--listen`` endpoint (a
:class:`~broker.service.BrokerService` each); a service is started as it is, and finds the
endpoints in ``AppContext.listen``. Everything runs under one top :class:`~net.service.MultiService`,
started once the reactor runs and stopped, in reverse, on SIGTERM/SIGINT. docs/RUNNING.md has
every option, the signals, the exit codes, and running under systemd or in a container.

The pieces are in net: :mod:`net.logsetup` (rotation, SIGHUP, JSON), :mod:`net.pidfile`,
:mod:`net.daemon` (double fork, sd_notify), :mod:`net.workers` (SO_REUSEPORT workers).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from net import daemon as daemon_mod
from net.address import IPv4Address, IPv6Address, UNIXAddress
from net.defer import Failure
from net.endpoints import parse
from net.error import CannotListenError
from net.logsetup import LogSetup, parse_size, setup_logging
from net.pidfile import Pidfile, PidfileInUse
from net.reactor import ReactorBase, available_reactors, default_reactor_name, make_reactor
from net.service import IService, MultiService, StreamServerService
from net.workers import Supervisor

from .call_options import CallIdFilter
from .flavors import Referenceable
from .login import is_portal
from .service import BrokerService

__all__ = ["main", "AppContext", "EXIT_OK", "EXIT_APP_ERROR", "EXIT_USAGE", "EXIT_TEMPFAIL", "UsageError"]

log = logging.getLogger("pbroker")

#: Exit codes, for a supervisor (systemd: ``RestartPreventExitStatus=2``): a clean stop; the
#: application failed (raised while loading or starting, or its workers keep dying); the
#: command line is wrong (retrying cannot help); a temporary failure -- the address is in use,
#: or another instance holds the pidfile (sysexits.h EX_TEMPFAIL: retrying later may work).
EXIT_OK, EXIT_APP_ERROR, EXIT_USAGE, EXIT_TEMPFAIL = 0, 1, 2, 75


class UsageError(Exception):
    """The command line is wrong (exit 2); the message says what to write instead."""


@dataclass
class AppContext:
    """What a callable OBJECT is given: the reactor, the endpoints, its own arguments, a logger."""

    reactor: ReactorBase
    #: The --listen endpoints (a Root/Portal is served on each; with --workers, rewritten to
    #: share one port: ``reuse_port=1`` and the port chosen).
    listen: list[str]
    #: The command-line arguments after ``--``, for the application's own options.
    argv: list[str]
    #: The application's logger (its lines go to --logfile).
    log: logging.Logger
    #: --state-dir, where the application keeps its files (databases, keys); None: the current directory.
    state_dir: str | None


# -- the command line ----------------------------------------------------------------------------


def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"umask must be octal, like 022 or 0027, not {text!r}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"umask must be between 000 and 777, not {text!r}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbroker", description="Serve a pbroker application, or open a manhole console into one.",
        epilog="docs/RUNNING.md describes every option, the signals and the exit codes.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="serve MODULE:OBJECT (a Root, a Portal, a service, or a callable making one)",
        description="Serve MODULE:OBJECT: a broker.Root, a cred Portal, a net.service.IService, or a "
                    "callable taking an AppContext and returning one. Arguments after -- go to the app.")
    serve.add_argument("target", metavar="MODULE:OBJECT")
    serve.add_argument("--listen", action="append", default=[], metavar="ENDPOINT",
                       help="an endpoint to serve on (repeatable), e.g. tcp:8800, unix:/run/app.sock, tls:8443:cert=...")
    serve.add_argument("--reactor", choices=available_reactors(), default=None,
                       help="the reactor backend (default: $PBROKER_REACTOR, else the best available)")
    serve.add_argument("--logfile", default="-", metavar="PATH|-", help="log to PATH (default: - for stderr)")
    serve.add_argument("--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO (default), WARNING, ERROR")
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument("--rotate-size", type=_size, default=None, metavar="SIZE",
                       help="rotate the log file at this size (10M, 500K, ...)")
    serve.add_argument("--rotate-keep", type=int, default=5, metavar="N", help="rotated files kept (default 5)")
    serve.add_argument("--rotate-daily", action="store_true", help="also rotate the log file at midnight")
    serve.add_argument("--pidfile", default=None, metavar="PATH")
    serve.add_argument("--daemon", action="store_true", help="detach (double fork); returns once serving")
    serve.add_argument("--uid", default=None, help="user to run as once listening (name or number)")
    serve.add_argument("--gid", default=None, help="group to run as once listening (name or number)")
    serve.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="N processes sharing each tcp: port (SO_REUSEPORT), supervised")
    serve.add_argument("--umask", type=_octal, default=None, metavar="MASK", help="e.g. 027")
    serve.add_argument("--state-dir", default=None, metavar="DIR", help="where the application keeps its files")
    serve.add_argument("--grace", type=_seconds, default=10.0, metavar="SECONDS",
                       help="how long calls running at shutdown may take to finish (default 10)")
    serve.add_argument("--manhole", default=None, metavar="ENDPOINT",
                       help="a Python console into the server on ENDPOINT (unix: or tls:, never tcp:)")
    manhole = commands.add_parser("manhole", help="open a console on a running server's --manhole endpoint")
    manhole.add_argument("endpoint", metavar="ENDPOINT")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``pbroker`` console script (and ``python -m broker``); returns the exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    app_argv: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, app_argv = args_in[:cut], args_in[cut + 1:]
    parser = build_parser()
    try:
        args = parser.parse_args(args_in)
    except SystemExit as exc:  # argparse printed the usage and why
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "manhole":
        return _manhole_client(args.endpoint)
    try:
        return serve(args, app_argv)
    except UsageError as exc:
        print(f"pbroker serve: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _manhole_client(endpoint: str) -> int:
    try:
        from net import manhole
    except ImportError as exc:
        print(f"pbroker manhole: this installation has no manhole (net.manhole cannot be imported: {exc})",
              file=sys.stderr)
        return EXIT_APP_ERROR
    return int(manhole.run_client(endpoint))


# -- serve: checks and the process layout (daemon, supervisor, workers) ----------------------------


def load_target(spec: str) -> Any:
    """Import MODULE and return OBJECT; UsageError if either is not there (the app's own errors propagate)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"expected MODULE:OBJECT (e.g. myapp.server:root), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` does: the app beside us
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"cannot import {module_name!r}: no such module (is it on PYTHONPATH? "
                             f"the current directory is {os.getcwd()})") from None
        raise
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no {attribute!r}") from None
    return obj


def _check_endpoint(spec: str) -> None:
    """A bad --listen string is a usage error, found before anything starts (the endpoint is
    only built here, with no reactor: nothing listens yet)."""
    from net.endpoints import server

    try:
        server(cast(Any, None), spec)
    except ValueError as exc:
        raise UsageError(f"--listen {spec!r}: {exc}") from None
    except Exception:  # noqa: BLE001 - anything else shows when it starts listening, with its cause
        pass


def _check_worker_endpoints(listen: list[str]) -> None:
    for spec in listen:
        try:
            prefix, _, _ = parse(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if prefix != "tcp":
            raise UsageError(f"--workers shares tcp: ports only (SO_REUSEPORT); {spec!r} is {prefix}:. "
                             f"Run one process per unix: or tls: endpoint, or put a TLS proxy in front")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _shared_endpoint(spec: str, reserved: list[Any]) -> str:
    """``tcp:PORT:...`` with ``reuse_port=1``; port 0 is chosen here, once, for every worker
    (a socket bound with SO_REUSEPORT, not listening, holds it for the supervisor's lifetime)."""
    import socket

    _, args, kwargs = parse(spec)
    port = kwargs.pop("port", args[0] if args else "0")
    interface = kwargs.get("interface", "").strip("[]")
    if int(port) == 0:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        holder = socket.socket(family, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((interface, 0))
        reserved.append(holder)
        port = str(holder.getsockname()[1])
    kwargs["reuse_port"] = "1"
    return ":".join(["tcp", port] + [f"{k}={_escape(v)}" for k, v in kwargs.items()])


def _worker_logfile(path: str, index: int) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}.worker{index}{ext}"


def serve(args: argparse.Namespace, app_argv: list[str]) -> int:
    """``pbroker serve``: check, load, then run as one process, a daemon, and/or a supervisor."""
    if args.daemon and args.logfile == "-":
        raise UsageError("--daemon closes stderr: give --logfile PATH (a daemon's log must go somewhere)")
    if args.rotate_keep < 0:
        raise UsageError(f"--rotate-keep must be 0 or more, not {args.rotate_keep}")
    if not isinstance(logging.getLevelName(args.log_level.upper()), int):
        raise UsageError(f"unknown --log-level {args.log_level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    for spec in args.listen:
        _check_endpoint(spec)
    if args.workers > 1:
        _check_worker_endpoints(args.listen)
    uid, gid = _resolve_ids(args.uid, args.gid)
    # Paths are made absolute before a daemon's chdir("/").
    logfile = args.logfile if args.logfile == "-" else os.path.abspath(args.logfile)
    pidfile_path = None if args.pidfile is None else os.path.abspath(args.pidfile)
    state_dir = None if args.state_dir is None else os.path.abspath(args.state_dir)
    if args.umask is not None:
        os.umask(args.umask)
    try:
        target = load_target(args.target)
    except UsageError:
        raise
    except Exception:
        import traceback

        print(f"pbroker serve: importing {args.target!r} failed:", file=sys.stderr)
        traceback.print_exc()
        return EXIT_APP_ERROR
    readiness = daemon_mod.daemonize(umask=args.umask) if args.daemon else None
    opts = _Options(args, app_argv, logfile, state_dir, uid, gid, readiness)
    pidfile = Pidfile(pidfile_path) if pidfile_path is not None else None
    try:
        if pidfile is not None:
            try:
                pidfile.acquire()
            except PidfileInUse as exc:
                return opts.fail(EXIT_TEMPFAIL, str(exc))
            except OSError as exc:
                return opts.fail(EXIT_TEMPFAIL, f"cannot write the pidfile {pidfile_path}: {exc}")
            opts.warnings.append(pidfile.describe_replaced() or "")
        if args.workers == 1:
            return _run_process(opts, target, opts.listen_for_app(), index=None, worker_ready=None)
        return _supervise(opts, target)
    finally:
        if pidfile is not None:
            pidfile.release()
        opts.tell_starter()  # after the release: once the starter exits, nothing is left of us


class _Options:
    """The checked options, and how to report a failure (to stderr, or to the daemon's starter)."""

    def __init__(self, args: argparse.Namespace, app_argv: list[str], logfile: str, state_dir: str | None,
                 uid: int | None, gid: int | None, readiness: daemon_mod.Readiness | None) -> None:
        self.args = args
        self.app_argv = app_argv
        self.logfile = logfile
        self.state_dir = state_dir
        self.uid = uid
        self.gid = gid
        self.readiness = readiness
        #: Said before logging was set up: logged once it is (by the process that serves or supervises).
        self.warnings: list[str] = []
        #: A daemon's failure, told to its starter once the daemon has cleaned up (tell_starter).
        self._failure: tuple[int, str] | None = None

    def listen_for_app(self) -> list[str]:
        return list(self.args.listen)

    def fail(self, code: int, message: str) -> int:
        log.error("%s", message)
        if self.readiness is not None and self.readiness.pending:
            if self._failure is None:
                self._failure = (code, f"pbroker serve: {message}")
        elif not logging.getLogger().handlers or self.logfile != "-":
            print(f"pbroker serve: {message}", file=sys.stderr)
        return code

    def tell_starter(self) -> None:
        """A daemon that failed says so now (its pidfile released), so the starter exits last."""
        if self._failure is not None and self.readiness is not None:
            self.readiness.failed(*self._failure)

    def setup_logs(self, path: str) -> LogSetup:
        args = self.args
        setup = setup_logging(path, level=args.log_level, fmt=args.log_format, rotate_size=args.rotate_size,
                              rotate_keep=args.rotate_keep, rotate_daily=args.rotate_daily)
        setup.handler.addFilter(CallIdFilter())
        warnings, self.warnings = [w for w in self.warnings if w], []
        for warning in warnings:
            log.warning("%s", warning)
        return setup


def _resolve_ids(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    import grp
    import pwd

    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            if not user.isdigit():
                raise UsageError(f"--uid {user!r}: no such user") from None
            uid = int(user)
        else:
            uid = entry.pw_uid
            gid = entry.pw_gid
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--gid {group!r}: no such group") from None
    if (uid is not None or gid is not None) and os.geteuid() != 0:
        raise UsageError("--uid/--gid need the server started as root (it drops to them once listening)")
    return uid, gid


def _supervise(opts: _Options, target: Any) -> int:
    """--workers N: this process supervises; each worker runs :func:`_run_process`."""
    reserved: list[Any] = []
    try:
        listen = [_shared_endpoint(spec, reserved) for spec in opts.args.listen]
    except (OSError, ValueError) as exc:
        for sock in reserved:
            sock.close()
        return opts.fail(EXIT_TEMPFAIL, f"cannot reserve the port to share: {exc}")
    logs = opts.setup_logs(opts.logfile)
    readiness = opts.readiness

    def all_ready() -> None:
        line = f"pbroker[{os.getpid()}]: {opts.args.workers} workers serving on {', '.join(listen)}"
        log.info("%s", line)
        if readiness is not None:
            readiness.ready([line])
        else:
            _say([line])
        daemon_mod.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS={opts.args.workers} workers serving")

    def in_child() -> None:
        os.environ.pop("NOTIFY_SOCKET", None)  # the supervisor speaks to systemd for all
        if opts.readiness is not None:  # the supervisor tells the starting process for all
            opts.readiness.abandon()
            opts.readiness = None
        for sock in reserved:
            sock.close()

    def run_worker(index: int, ready: Callable[[], None]) -> int:
        return _run_process(opts, target, listen, index=index, worker_ready=ready)

    supervisor = Supervisor(opts.args.workers, run_worker, on_all_ready=all_ready, in_child=in_child,
                            on_stopping=lambda: daemon_mod.notify("STOPPING=1"), on_hup=logs.reopen)
    try:
        code = supervisor.run()
    finally:
        for sock in reserved:
            sock.close()
    if readiness is not None and readiness.pending and opts._failure is None:
        opts._failure = (code or EXIT_APP_ERROR, "pbroker serve: the workers stopped before all were serving "
                                                 f"(see {opts.logfile})")  # told once cleaned up
    logs.close()
    return code


# -- one serving process (the only one, or a worker) ------------------------------------------------


def _describe(address: Any) -> str:
    if isinstance(address, IPv4Address):
        return f"tcp:{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"tcp:[{address.host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        return f"unix:{address.name}"
    return str(address)


def _listening(service: IService) -> Iterator[StreamServerService]:
    if isinstance(service, StreamServerService):
        yield service
    if isinstance(service, MultiService):
        for child in service:
            yield from _listening(child)


def build_services(obj: Any, ctx: AppContext, grace: float) -> tuple[Any, list[IService]]:
    """The application object (a callable's result) and the services that serve it."""
    if callable(obj) and not isinstance(obj, Referenceable) and not is_portal(obj) and not isinstance(obj, IService):
        obj = obj(ctx)
    if isinstance(obj, Referenceable) or is_portal(obj):
        if not ctx.listen:
            raise UsageError("a Root or a Portal is served on the --listen endpoints: give at least one "
                             "(e.g. --listen tcp:8800)")
        return obj, [BrokerService(ctx.reactor, endpoint, obj, grace=grace) for endpoint in ctx.listen]
    if isinstance(obj, IService):
        return obj, [obj]
    raise UsageError(f"{type(obj).__name__} {obj!r:.80} is not something to serve: OBJECT must be a broker.Root, "
                     f"a cred Portal, a net.service.IService, or a callable returning one of those")


def _run_process(opts: _Options, target: Any, listen: list[str], *, index: int | None,
                 worker_ready: Callable[[], None] | None) -> int:
    """Set up logging, build the services, run the reactor until stopped; the exit code."""
    logfile = opts.logfile if index is None or opts.logfile == "-" else _worker_logfile(opts.logfile, index)
    logs = opts.setup_logs(logfile)
    try:
        return _serve_in_reactor(opts, target, listen, logs, index, worker_ready)
    except UsageError as exc:
        return opts.fail(EXIT_USAGE, str(exc))
    except Exception as exc:
        log.exception("the application failed to start")
        return opts.fail(EXIT_APP_ERROR, f"the application failed to start: {exc!r}")
    finally:
        logs.close()


def _serve_in_reactor(opts: _Options, target: Any, listen: list[str], logs: LogSetup, index: int | None,
                      worker_ready: Callable[[], None] | None) -> int:
    args = opts.args
    who = f"pbroker[{os.getpid()}]" + (f" worker {index}" if index is not None else "")
    reactor_name = args.reactor or default_reactor_name()
    try:
        reactor = make_reactor(reactor_name)
    except ValueError as exc:  # PBROKER_REACTOR names no backend here
        raise UsageError(f"{exc} (from --reactor or $PBROKER_REACTOR)") from None
    module_name = args.target.partition(":")[0]
    ctx = AppContext(reactor, listen, opts.app_argv, logging.getLogger(module_name), opts.state_dir)
    app, services = build_services(target, ctx, args.grace)
    top = MultiService(*services, name="pbroker")
    if args.manhole is not None:
        try:
            from net.manhole import ManholeService
        except ImportError as exc:
            raise UsageError(f"--manhole: this installation has no manhole (net.manhole: {exc})") from None
        try:
            top.add_service(ManholeService(reactor, args.manhole, {"app": app, "reactor": reactor, "service": top}))
        except ValueError as exc:
            raise UsageError(f"--manhole {args.manhole!r}: {exc}") from None
    outcome = {"code": EXIT_OK}

    def started(_: object) -> None:
        said = [f"listening on {_describe(s.port.get_host())}" for s in _listening(top) if s.port is not None]
        said.append(f"serving {args.target} (reactor {reactor_name})")
        for line in said:
            log.info("%s", line)
        lines = [f"{who}: {line}" for line in said]
        _drop_privileges(opts.uid, opts.gid)
        if opts.readiness is not None and index is None:
            opts.readiness.ready(lines)
        elif opts.readiness is None:
            _say(lines)
        if index is None:
            daemon_mod.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving")
        if worker_ready is not None:
            worker_ready()

    def start_failed(failure: Failure) -> None:
        exc = failure.value
        code = EXIT_TEMPFAIL if isinstance(exc, CannotListenError) else EXIT_APP_ERROR
        outcome["code"] = code
        log.debug("could not start", exc_info=(type(exc), exc, exc.__traceback__))
        opts.fail(code, f"could not start: {exc}")
        reactor.stop()

    def start() -> None:
        top.start_service().add_callbacks(started, start_failed)

    def stopping() -> Any:
        if index is None:
            daemon_mod.notify("STOPPING=1")
        if not top.running:
            return None
        log.info("stopping")
        return top.stop_service()

    reactor.call_when_running(start)
    reactor.add_system_event_trigger("before", "shutdown", stopping)
    # SIGHUP reopens the log (from the loop: a handler runs between two bytecodes, maybe in emit).
    signal.signal(signal.SIGHUP, lambda signum, frame: reactor.call_from_thread(logs.reopen))
    try:
        reactor.run()
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        reactor.close()
    log.info("stopped")
    return outcome["code"]


def _say(lines: list[str]) -> None:
    """Print ``lines`` to stdout in one write: workers share the pipe, and a write of less than
    PIPE_BUF bytes is never interleaved with another process's (print() writes in pieces)."""
    sys.stdout.flush()
    data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(sys.stdout.fileno(), data):]
    except OSError:  # stdout closed or gone: the log has the lines
        pass


def _drop_privileges(uid: int | None, gid: int | None) -> None:
    """Become ``uid``/``gid`` once listening (privileged ports are bound by then)."""
    if gid is not None:
        os.setgroups([gid])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    if uid is not None or gid is not None:
        log.info("now running as uid %d, gid %d", os.getuid(), os.getgid())

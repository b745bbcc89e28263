"""Login with perspectives: a cred Portal served over the broker, and the client side of it.

:func:`serve` (``broker.serve``) given a Portal gives every connection a fresh :class:`LoginObject`
as its bootstrap object 0. Before login that object is all a client can reach (references are
capabilities: nothing else has been sent to it); a successful login answers with a reference to
the avatar the realm made, an :class:`Avatar` whose ``perspective_<name>`` methods are the
client's whole API, and makes the avatar the connection's ``perspective`` (what
``Viewable.view_<name>`` receives). The realm's logout runs once, when the connection closes.

The calls on object 0 (``docs/PROTOCOL.md`` section 14, which the Java client implements)::

    login_scram_start(client_first) -> server_first
    login_scram_finish(client_final, mind) -> {"server_final": str, "avatar": ref}
    login_anonymous(mind) -> avatar ref
    login_certificate(mind) -> avatar ref        (the connection's TLS client certificate)

Every failed login fails with ``cred.error.UnauthorizedLogin`` and its fixed message, whatever
went wrong (bad proof, unknown user, malformed message, throttled, realm refused), so a client
learns nothing that helps guessing. SCRAM (``cred.scram``) keeps the password and anything
replayable off the wire; the client checks the server's signature before it uses the avatar.

This is the only broker module that imports ``cred``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from zope.interface import Interface, implementer

from cred.checkers import IScramVerifierSource
from cred.credentials import (
    Anonymous,
    ClientCertificate,
    IAnonymous,
    IUsernamePassword,
    IUsernameScramSha256,
)
from cred.error import LoginFailed, ScramError, UnauthorizedLogin
from cred.portal import Portal
from cred.scram import ScramClient, ScramServer, ScramVerifier
from cred.throttle import LoginThrottle
from net.defer import CancelledError, Deferred, Failure, ensure_deferred, maybe_deferred

from . import api
from .errors import NoSuchMethodError, RemoteError
from .flavors import Caller, Referenceable, Root, register_copyable
from .session import RemoteReference, Session

__all__ = [
    "IPerspective",
    "Avatar",
    "CertificateLogin",
    "PortalRoot",
    "LoginObject",
    "is_portal",
    "serving_root",
    "AlreadyLoggedIn",
    "LoginSequenceError",
    "login",
    "login_with",
    "serve",
]

log = logging.getLogger(__name__)  # "broker.login": refused logins (WARNING), logins (INFO)

UNAUTHORIZED_TYPE = "cred.error.UnauthorizedLogin"


class IPerspective(Interface):
    """What the broker asks the realm for: an avatar a remote client may call.

    The avatar must be a :class:`~broker.flavors.Referenceable` (usually an :class:`Avatar`),
    because the login answers with a reference to it.
    """


@implementer(IPerspective)
class Avatar(Referenceable):
    """A logged-in user's object: remote calls reach ``perspective_<name>`` methods only.

    A distinct prefix keeps an avatar's API separate from anything ``remote_`` a base class
    may have, so what a user can do is exactly what is spelled ``perspective_``.
    """

    def remote_message_received(self, caller: Caller, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        method = getattr(self, "perspective_" + name, None)
        if method is None:
            raise NoSuchMethodError.lookup_failed(self, name, ("perspective_",), "perspective method")
        return method(*args, **kwargs)


class CertificateLogin:
    """Client credentials meaning "log me in with the certificate I presented to TLS".

    It carries nothing: the certificate already went through the TLS handshake, which proved
    that the client holds its key. The server reads it from the connection.
    """

    def __repr__(self) -> str:
        return "CertificateLogin()"


class AlreadyLoggedIn(RemoteError):
    """A login call on a connection that is logged in (wire type ``broker.AlreadyLoggedIn``)."""

    def __init__(self, remote_type: str = "broker.AlreadyLoggedIn",
                 message: str = "this connection is already logged in", remote_traceback: str | None = None) -> None:
        super().__init__(remote_type, message, remote_traceback)


class LoginSequenceError(RemoteError):
    """A login call out of order, e.g. finish before start (wire type ``broker.LoginSequenceError``)."""

    def __init__(self, remote_type: str = "broker.LoginSequenceError",
                 message: str = "login call out of order", remote_traceback: str | None = None) -> None:
        super().__init__(remote_type, message, remote_traceback)


# A client gets these back as themselves (broker.failures.from_failure asks the registry).
register_copyable("broker.AlreadyLoggedIn", AlreadyLoggedIn)
register_copyable("broker.LoginSequenceError", LoginSequenceError)


def _no_verifiers(username: str) -> ScramVerifier | None:
    return None


def _throttle_key(session: Any) -> Any:
    """Whose failures count together: a TCP peer's host; a Unix socket peer's uid (every client
    of a socket has the same address, so keying by it would let one user lock out all)."""
    peer = session.peer
    host = getattr(peer, "host", None)
    if host is not None:
        return host
    credentials = session.peer_credentials
    if credentials is not None:
        return f"uid:{credentials.uid}"
    return peer


def _lookup_verifier(source: Any, username: str) -> Any:
    """``source``'s verifier for ``username``: a value, or a Deferred of one."""
    get = getattr(source, "get_scram_verifier", None)
    return get(username) if callable(get) else source(username)


# -- server ----------------------------------------------------------------------------------


@api.needs_reactor("serve", "'tcp:8800', root")
def serve(reactor: Any, endpoint: str, root: Referenceable | Portal | None, *,
          throttle: LoginThrottle | None = None, **options: Any) -> Deferred[Any]:
    """``broker.serve``: listen on ``endpoint`` and hand ``root`` to every client.

    ``root`` is any Referenceable (a :class:`~broker.flavors.Root` may make one per
    connection), or a ``cred.portal.Portal``: then each connection's bootstrap object is a fresh
    login object (:class:`PortalRoot`, docs/PROTOCOL.md section 14) and ``throttle`` (a
    ``cred.throttle.LoginThrottle``, shared by every connection) limits guessing. The other
    options are :func:`broker.api.serve`'s. Returns a Deferred firing with the listening port.
    """
    return api.serve(reactor, endpoint, serving_root(root, throttle=throttle), **options)


def is_portal(obj: object) -> bool:
    """True for a ``cred.portal.Portal`` (for code of broker that may not import cred itself)."""
    return isinstance(obj, Portal)


def serving_root(root: Referenceable | Portal | None, *, throttle: LoginThrottle | None = None) -> Referenceable | None:
    """The root object :func:`serve` hands clients: ``root`` itself, or a Portal's :class:`PortalRoot`."""
    if isinstance(root, Portal):
        return PortalRoot(root, throttle=throttle)
    if throttle is not None:
        raise TypeError("serve(throttle=...) applies to a cred Portal only")
    return root


class PortalRoot(Root):
    """What ``broker.serve`` turns a Portal into: one :class:`LoginObject` per connection.

    The throttle is shared by every connection, so guessing from many connections counts
    together; the default allows 5 failures a minute per user and per peer host.
    """

    def __init__(self, portal: Portal, *, throttle: LoginThrottle | None = None) -> None:
        self.portal = portal
        self.throttle = throttle if throttle is not None else LoginThrottle()
        checker = portal.checker_for(IUsernameScramSha256)
        # Without a verifier source every SCRAM login still runs (against fake verifiers) and
        # fails at the proof, like an unknown user: nothing tells a client what is configured.
        self.verifiers: Any = checker if IScramVerifierSource.providedBy(checker) else _no_verifiers

    def root_object(self, caller: Caller) -> Referenceable:
        assert isinstance(caller, Session)
        return LoginObject(self, caller)


class LoginObject(Referenceable):
    """One connection's bootstrap object until (and after) it logs in; see the module doc.

    States (docs/PROTOCOL.md 14.2): idle, open exchange (after ``login_scram_start``), busy (a
    login call is running), logged in. A login call while busy is a LoginSequenceError, any
    other from idle or an open exchange starts over, a failure returns to idle, and once logged
    in every login call fails with AlreadyLoggedIn.
    """

    #: Raised to answer the caller, not crashes: broker.calls logs them at INFO (we log at WARNING).
    expected_errors = (LoginFailed,)

    def __init__(self, root: PortalRoot, session: Session) -> None:
        self._root = root
        self._session = session
        self._scram: ScramServer | None = None
        self._busy = False
        self._logged_in = False

    def __repr__(self) -> str:
        return f"<LoginObject {self._session!r}>"

    def remote_message_received(self, caller: Caller, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        # Wrong arguments would answer a builtins.TypeError quoting our Python signature: answer
        # a LoginSequenceError with a neutral text instead (docs/PROTOCOL.md 14.2).
        method = getattr(self, "remote_" + name, None) if name != "message_received" else None
        if method is not None:
            try:
                inspect.signature(method).bind(*args, **kwargs)
            except TypeError:
                raise LoginSequenceError(message="malformed login call") from None
        return super().remote_message_received(caller, name, args, kwargs)

    # -- the four calls ----------------------------------------------------------------------

    def remote_login_scram_start(self, client_first: str) -> Deferred[str]:
        self._check_idle("login_scram_start")
        self._scram = None
        source = self._root.verifiers
        claimed: list[str] = []

        def attempt() -> Deferred[str]:
            # Parse first (a malformed message fails before any lookup), then look the verifier
            # up: a database's get_scram_verifier (cred.sqlstore) answers with a Deferred.
            probe = ScramServer(_no_verifiers)
            probe.server_first(client_first)
            assert probe.claimed_username is not None
            claimed.append(probe.claimed_username)
            return maybe_deferred(_lookup_verifier, source, probe.claimed_username).add_callback(start)

        def start(verifier: ScramVerifier | None) -> str:
            # An unknown user (None) gets ScramServer's fake verifier, as with a synchronous source.
            scram = ScramServer(lambda _username: verifier,
                                fake_iterations=getattr(source, "default_iterations", None))
            server_first = scram.server_first(client_first)
            self._scram = scram
            return server_first

        return self._guard(None, attempt, lambda: claimed[0] if claimed else None)

    def remote_login_scram_finish(self, client_final: str, mind: Any = None) -> Deferred[dict[str, Any]]:
        self._check_idle("login_scram_finish")
        scram, self._scram = self._scram, None
        if scram is None:
            raise LoginSequenceError(message="login_scram_finish needs a successful login_scram_start first")

        def attempt() -> Deferred[dict[str, Any]]:
            server_final = scram.server_final(client_final)  # UnauthorizedLogin / ScramError
            d = self._portal_login(scram.credentials(), mind)
            return d.add_callback(lambda avatar: {"server_final": server_final, "avatar": avatar})

        return self._guard(scram.claimed_username, attempt)

    def remote_login_anonymous(self, mind: Any = None) -> Deferred[Referenceable]:
        self._check_idle("login_anonymous")
        self._scram = None
        return self._guard(None, lambda: self._portal_login(Anonymous(), mind), lambda: "<anonymous>")

    def remote_login_certificate(self, mind: Any = None) -> Deferred[Referenceable]:
        self._check_idle("login_certificate")
        self._scram = None

        def attempt() -> Deferred[Referenceable]:
            cert = self._session.peer_certificate
            if cert is None:  # not TLS, or the client sent no certificate
                raise UnauthorizedLogin()
            return self._portal_login(ClientCertificate(cert), mind)

        return self._guard(None, attempt, self._certificate_subject)

    # -- machinery -------------------------------------------------------------------------------

    def _check_idle(self, method: str) -> None:
        if self._logged_in:
            raise AlreadyLoggedIn()
        if self._busy:
            raise LoginSequenceError(message=f"{method}: another login call on this connection is still running")

    def _guard(self, username: str | None, attempt: Callable[[], Any],
               who: Callable[[], str | None] | None = None) -> Deferred[Any]:
        """Run one login step under the throttle; every failure becomes UnauthorizedLogin.

        ``who`` names the user for the log once known (never the password: none reaches us).
        """
        host = _throttle_key(self._session)
        self._busy = True
        d = self._root.throttle.guard(username, host, attempt)

        def done(result: Any) -> Any:
            self._busy = False
            return result

        def user() -> str | None:
            try:
                return username or (who() if who is not None else None)
            except Exception:
                return None

        return d.add_both(done).add_errback(self._refuse, user)

    def _peer_text(self) -> str:
        peer = self._session.peer
        if hasattr(peer, "host") and hasattr(peer, "port"):
            return f"{peer.host}:{peer.port}"
        return str(peer) if peer is not None else self._session.name or "?"

    def _certificate_subject(self) -> str | None:
        cert = self._session.peer_certificate
        if cert is None:
            return None
        try:
            return f"certificate {cert.subject.rfc4514_string()}"
        except Exception:
            return "certificate"

    def _refuse(self, failure: Failure, user: Callable[[], str | None]) -> Failure:
        self._scram = None
        if failure.check(CancelledError):  # the connection closed: nobody to answer
            return failure
        name = user()
        who = f"user {name!r}" if name is not None else "unknown user"
        extra = {"user": name, "peer": self._peer_text()}
        if failure.check(LoginFailed):
            log.warning("login refused for %s from %s: %s", who, self._peer_text(), failure.value, extra=extra)
        else:
            log.error("login for %s from %s failed with a server error: %s", who, self._peer_text(),
                      failure.get_traceback(), extra=extra)
        raise UnauthorizedLogin()

    def _portal_login(self, credentials: Any, mind: Any) -> Deferred[Referenceable]:
        return self._root.portal.login(credentials, mind, IPerspective).add_callback(self._logged_in_as)

    def _logged_in_as(self, result: tuple[Any, Any, Callable[[], None]]) -> Referenceable:
        _interface, avatar, logout = result
        self._session.on_close(logout)  # runs once, and at once if the connection is gone already
        if not isinstance(avatar, Referenceable):
            raise TypeError(f"the realm's avatar {avatar!r} is not Referenceable (subclass broker.Avatar)")
        self._logged_in = True
        self._session.perspective = avatar
        log.info("logged in from %s as %r", self._peer_text(), avatar, extra={"peer": self._peer_text()})
        return avatar


# -- client ----------------------------------------------------------------------------------


@api.needs_reactor("login", "'tls:HOST:8801:ca=ca.pem', credentials")
def login(reactor: Any, endpoint: str, credentials: Any, mind: Referenceable | None = None,
          **options: Any) -> Deferred[RemoteReference]:
    """Connect to ``endpoint``, log in, and fire with a reference to the avatar.

    ``credentials``: ``cred.credentials.UsernamePassword`` (SCRAM-SHA-256: the password never
    leaves this process), ``cred.credentials.Anonymous()``, or :class:`CertificateLogin`
    (with a ``tls:`` endpoint carrying ``cert=`` and ``key=``). ``mind`` is an object of ours the
    server's realm receives as a reference, to call back into. Options as for ``broker.connect``.
    A failed login fails with a ``cred.error.LoginFailed`` (usually ``UnauthorizedLogin``) and
    closes the connection; so does a server that cannot prove it knows the password.
    Disconnect with ``avatar.session.disconnect()`` (that is also the logout).
    """

    async def connect_and_login() -> RemoteReference:
        root = await api.connect(reactor, endpoint, **options)
        try:
            return await login_with(root, credentials, mind)
        except BaseException:
            root.session.disconnect()
            raise

    return ensure_deferred(connect_and_login())


async def login_with(root: RemoteReference, credentials: Any, mind: Referenceable | None = None) -> RemoteReference:
    """Log in on an open connection whose ``root`` is a server's login object; the avatar.

    Raises ``UnauthorizedLogin`` for a refused login and ``ScramError`` for a server whose
    signature does not verify (the caller should disconnect: :func:`login` does).
    """
    try:
        if IUsernamePassword.providedBy(credentials):
            client = ScramClient(credentials.username, credentials.password)
            server_first = await root.call_remote("login_scram_start", client.client_first())
            result = await root.call_remote("login_scram_finish", client.client_final(server_first), mind)
            if not (isinstance(result, dict) and isinstance(result.get("server_final"), str)):
                raise ScramError(f"malformed login_scram_finish answer: {result!r:.80}")
            client.verify_server_final(result["server_final"])  # mutual authentication
            avatar = result.get("avatar")
        elif IAnonymous.providedBy(credentials):
            avatar = await root.call_remote("login_anonymous", mind)
        elif isinstance(credentials, CertificateLogin):
            avatar = await root.call_remote("login_certificate", mind)
        else:
            raise TypeError(f"cannot log in with {credentials!r}: use UsernamePassword, Anonymous or CertificateLogin")
    except RemoteError as exc:
        if exc.remote_type == UNAUTHORIZED_TYPE:
            raise UnauthorizedLogin() from exc
        raise
    if not isinstance(avatar, RemoteReference):
        raise LoginFailed(f"the server answered the login with {avatar!r:.80}, not an avatar reference")
    return avatar

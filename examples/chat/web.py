"""The chat server's web pages: sign up, and change one's password. Plain HTML forms, no JavaScript.

Served by :mod:`net.web` in the same process as IRC and the broker, writing the same
``cred.sqlstore.SQLUserDatabase`` they log in against, so an account made here works on both at
once. :func:`web_service` is what ``examples/chat/app.py`` adds to its services.

What it defends against, and how:

* **Cross-site form posts (CSRF).** Each form carries a token: ``issued.hexdigest``, where the
  digest is an HMAC-SHA256, under a server secret, of the form's name, the issue time and a random
  id kept in the ``chat_csrf`` cookie (HttpOnly, SameSite=Strict). A POST whose token is missing,
  forged, for another form, for another cookie, or older than :data:`TOKEN_LIFETIME` gets 403.
  Nothing is stored per form: the server keeps only its secret.
* **Guessing and mass signups.** Each client address gets :attr:`SignupSite.posts_per_minute`
  POSTs a minute (signups and password changes counted apart); more get 429 with
  ``Retry-After``. The table of addresses is bounded (the oldest is forgotten first).
* **Weak passwords.** At least :data:`MIN_PASSWORD_LENGTH` characters, not the username, not one
  of the most common passwords (:data:`COMMON_PASSWORDS`, compared case-insensitively).
* **Names IRC cannot carry.** A username is an IRC nick (letters, digits and ``[]\\`_^{|}-``, not
  starting with a digit or ``-``), at most :data:`MAX_USERNAME_LENGTH` characters, unique
  case-insensitively as IRC compares nicks.
* **Markup injection.** Everything echoed into a page goes through ``html.escape``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from cred.sqlstore import UserExists
from net.web import Request, Response, WebService, peer_text

from .model import irc_lower, valid_nick

__all__ = [
    "web_service", "SignupSite", "LoginHelp", "CsrfTokens", "RateLimiter", "password_problem", "username_problem",
    "COMMON_PASSWORDS", "MIN_PASSWORD_LENGTH", "MAX_USERNAME_LENGTH", "TOKEN_LIFETIME",
]

log = logging.getLogger("examples.chat.web")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 512
MAX_USERNAME_LENGTH = 16
TOKEN_LIFETIME = 2 * 3600.0
"""Seconds a form stays good for: long enough to fill it in, short enough that a leaked page is
not a token for ever."""
CSRF_COOKIE = "chat_csrf"

#: The most common passwords of at least MIN_PASSWORD_LENGTH characters (shorter ones fail the
#: length rule anyway), from the public breach-corpus top lists; lower case.
COMMON_PASSWORDS = frozenset("""
1234567890 0123456789 1111111111 0000000000 1234512345 9876543210 1q2w3e4r5t qwertyuiop
password12 password123 password1234 passw0rd123 qwerty1234 qwerty12345 qwerty123456
1qaz2wsx3edc iloveyou123 princess123 football123 baseball123 starwars123 sunshine123
1234567890a a1234567890 abcdefghij abcd123456 abc1234567 asdfghjkl1 asdfghjkl; zxcvbnm123
qazwsxedc123 qazwsxedcrfv 1q2w3e4r5t6y welcome123 welcome1234 administrator admin12345
changeme123 letmein123 trustno1234 dragon1234 monkey1234 michael123 superman123 batman1234
pokemon123 liverpool1 chelsea123 jennifer123 computer123 whatever123 internet123 samsung123
password!! password1! p@ssw0rd123 p@ssword123 qwertyuiop1 qwertyuiop123 1234qwer!@ 123456789a
123456789q 12345678910 123123123123 1122334455 1234554321 5555555555 7777777777 9999999999
picture123 googledummy myspace123 mustang123 shadow1234 master1234 killer1234 hockey1234
""".split())


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be an account name, or None if it can."""
    if not username:
        return "Choose a username."
    if len(username) > MAX_USERNAME_LENGTH:
        return f"A username has at most {MAX_USERNAME_LENGTH} characters (it is also your IRC nick)."
    if not valid_nick(username):
        return ("A username is an IRC nick: letters, digits and []\\`_^{|}- only, "
                "not starting with a digit or '-'.")
    return None


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` is not good enough for ``username``, or None if it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"A password has at least {MIN_PASSWORD_LENGTH} characters (a short phrase is easy to remember)."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"A password has at most {MAX_PASSWORD_LENGTH} characters."
    if password.casefold() == username.casefold():
        return "The password must not be your username."
    if password.casefold() in COMMON_PASSWORDS:
        return "That password is one of the most common ones, and the first an attacker tries: choose another."
    return None


class CsrfTokens:
    """Per-form tokens bound to a cookie, signed with a server secret (see the module doc)."""

    def __init__(self, secret: bytes, now: Callable[[], float], lifetime: float = TOKEN_LIFETIME) -> None:
        if len(secret) < 16:
            raise ValueError("the CSRF secret needs at least 16 random bytes (secrets.token_bytes(32))")
        self.secret = secret
        self.now = now
        self.lifetime = lifetime

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_hex(16)

    def _digest(self, form: str, cookie: str, issued: int) -> str:
        message = f"{form}\0{cookie}\0{issued}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def issue(self, form: str, cookie: str) -> str:
        issued = int(self.now())
        return f"{issued}.{self._digest(form, cookie, issued)}"

    def check(self, form: str, cookie: str | None, token: str | None) -> bool:
        """True if ``token`` was issued by us, for ``form`` and this ``cookie``, and is not stale."""
        if not cookie or not token:
            return False
        issued_text, _, digest = token.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        if not 0 <= self.now() - issued <= self.lifetime:
            return False
        return hmac.compare_digest(digest, self._digest(form, cookie, issued))


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key, remembering at most ``max_keys`` keys."""

    def __init__(self, limit: int, window: float, now: Callable[[], float], max_keys: int = 10000) -> None:
        self.limit = limit
        self.window = window
        self.now = now
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str) -> float | None:
        """Count one event for ``key``: None if allowed, else the seconds until one would be."""
        now = self.now()
        times = self._events.pop(key, None)
        if times is None:
            times = deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._events[key] = times  # most recently used last
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        if len(times) >= self.limit:
            return max(1.0, times[0] + self.window - now)
        times.append(now)
        return None


@dataclass
class LoginHelp:
    """Where the success page tells a new user to log in (None: the page says it generically)."""

    irc: str | None = None
    """HOST:PORT of the IRC listener, e.g. "chat.example.org:6667"."""
    broker: str | None = None
    """The broker's client endpoint string, e.g. "tcp:chat.example.org:8789"."""


class SignupSite:
    """The request handler: ``/signup``, ``/password``, and a small index."""

    def __init__(self, store: Any, *, secret: bytes | None = None, now: Callable[[], float] = time.time,
                 posts_per_minute: int = 5, login_help: LoginHelp | None = None,
                 secure_cookies: bool = False) -> None:
        self.store = store
        self.tokens = CsrfTokens(secret or secrets.token_bytes(32), now)
        self.signups = RateLimiter(posts_per_minute, 60.0, now)
        self.changes = RateLimiter(posts_per_minute, 60.0, now)
        self.posts_per_minute = posts_per_minute
        self.login_help = login_help or LoginHelp()
        self.secure_cookies = secure_cookies

    async def __call__(self, request: Request) -> Response:
        route = ROUTES.get(request.path)
        if route is None:
            return page("Not found", "<p>There is no such page here.</p>" + NAV, status=404)
        if request.method not in ("GET", "HEAD", "POST"):
            return Response.text("Method not allowed\n", status=405, headers=[("Allow", "GET, HEAD, POST")])
        if route == "index":
            return page("Chat accounts", INDEX)
        if request.method == "POST":
            return await self._post(route, request)
        return self._form(route, request, {}, None)

    # -- pages ---------------------------------------------------------------------------------

    def _form(self, form: str, request: Request, values: dict[str, str], error: str | None,
              status: int = 200) -> Response:
        cookie = request.cookies().get(CSRF_COOKIE)
        headers = []
        if not cookie or len(cookie) != 32:
            cookie = self.tokens.new_cookie()
            secure = "; Secure" if self.secure_cookies else ""
            headers.append(("Set-Cookie", f"{CSRF_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict{secure}"))
        token = self.tokens.issue(form, cookie)
        body = (SIGNUP_FORM if form == "signup" else PASSWORD_FORM).format(
            token=html.escape(token), username=html.escape(values.get("username", "")),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            min=MIN_PASSWORD_LENGTH, max_name=MAX_USERNAME_LENGTH)
        title = "Sign up" if form == "signup" else "Change your password"
        response = page(title, body, status=status)
        response.headers.extend(headers)
        return response

    async def _post(self, form: str, request: Request) -> Response:
        fields = {k: v[0] for k, v in request.form().items()}
        if not self.tokens.check(form, request.cookies().get(CSRF_COOKIE), fields.get("csrf")):
            log.info("%s: %s refused: missing or bad CSRF token", peer_text(request.client), request.path)
            return page("Form expired", FORBIDDEN, status=403)
        limiter = self.signups if form == "signup" else self.changes
        wait = limiter.allow(_client_key(request.client))
        if wait is not None:
            log.info("%s: %s refused: over %d a minute", peer_text(request.client), request.path,
                     self.posts_per_minute)
            response = page("Slow down", TOO_MANY.format(n=self.posts_per_minute, seconds=int(wait + 0.999)),
                            status=429)
            response.headers.append(("Retry-After", str(int(wait + 0.999))))
            return response
        if form == "signup":
            return await self._signup(request, fields)
        return await self._change(request, fields)

    async def _signup(self, request: Request, fields: dict[str, str]) -> Response:
        username = fields.get("username", "").strip()
        password, confirm = fields.get("password", ""), fields.get("confirm", "")
        problem = username_problem(username) or password_problem(username, password)
        if problem is None and password != confirm:
            problem = "The two passwords differ: type the same password twice."
        if problem is None:
            existing = {irc_lower(name) for name in await self.store.users()}
            if irc_lower(username) in existing:
                problem = f"The username {username} is taken (IRC compares nicks ignoring case): choose another."
        if problem is None:
            try:
                await self.store.add_user(username, password)
            except UserExists:  # signed up by someone else since the check above
                problem = f"The username {username} is taken: choose another."
        if problem is not None:
            return self._form("signup", request, {"username": username}, problem, status=400)
        log.info("%s: signed up %r", peer_text(request.client), username)
        return page("Welcome", self._welcome(username))

    async def _change(self, request: Request, fields: dict[str, str]) -> Response:
        username = fields.get("username", "").strip()
        old, new, confirm = fields.get("old", ""), fields.get("new", ""), fields.get("confirm", "")
        problem: str | None = None
        if not username or not old or not await self.store.check_password(username, old):
            problem = "The username or the current password is wrong."
        elif new == old:
            problem = "The new password is the same as the current one."
        else:
            problem = password_problem(username, new)
            if problem is None and new != confirm:
                problem = "The two new passwords differ: type the same password twice."
        if problem is not None:
            return self._form("password", request, {"username": username}, problem, status=400)
        await self.store.set_password(username, new)
        log.info("%s: changed the password of %r", peer_text(request.client), username)
        return page("Password changed", CHANGED.format(username=html.escape(username)) + NAV)

    def _welcome(self, username: str) -> str:
        host, _, port = (self.login_help.irc or "HOST:PORT").rpartition(":")
        return WELCOME.format(username=html.escape(username), irc_host=html.escape(host or "HOST"),
                              irc_port=html.escape(port or "6667"),
                              broker=html.escape(self.login_help.broker or "tcp:HOST:PORT")) + NAV


def _client_key(client: object) -> str:
    """The rate limiter's key: the peer's host (every connection from one address shares it)."""
    host = getattr(client, "host", None)
    return str(host if host is not None else client)


def web_service(reactor: Any, endpoint: str, store: Any, *, secret: bytes | None = None,
                posts_per_minute: int = 5, login_help: LoginHelp | None = None,
                **limits: Any) -> WebService:
    """The signup and change-password pages on ``endpoint``, writing accounts to ``store`` (a
    ``cred.sqlstore.SQLUserDatabase``). ``secret`` signs the CSRF tokens (random per process if
    not given: forms then expire on restart); ``limits`` go to :class:`net.web.WebService`."""
    site = SignupSite(store, secret=secret, now=reactor.seconds, posts_per_minute=posts_per_minute,
                      login_help=login_help)
    limits.setdefault("max_body_bytes", 8192)  # three form fields; nothing legitimate is bigger
    service = WebService(reactor, endpoint, site, **limits)
    service.name = f"web {endpoint}"
    return service


# -- the HTML ------------------------------------------------------------------------------------

ROUTES = {"/": "index", "/signup": "signup", "/password": "password"}

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 34em; margin: 2em auto; padding: 0 1em;
       color: #1d232a; background: #f6f7f9; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
form { background: #fff; border: 1px solid #d5d9de; border-radius: 8px; padding: 1em 1.2em; }
label { display: block; margin-top: .8em; font-weight: 600; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .45em;
       font-size: 1em; border: 1px solid #aab1b9; border-radius: 4px; }
.hint { color: #56606b; font-size: .9em; margin: .2em 0 0; }
button { margin-top: 1.2em; padding: .5em 1.4em; font-size: 1em; border: 0; border-radius: 4px;
         background: #2458c6; color: #fff; cursor: pointer; }
.error { background: #fdecea; border: 1px solid #e0a39c; color: #8a1c12; padding: .6em .8em;
         border-radius: 6px; }
.ok { background: #e8f5e9; border: 1px solid #9cc9a0; padding: .6em .8em; border-radius: 6px; }
code, pre { background: #eceff3; border-radius: 4px; padding: .1em .3em; }
pre { padding: .6em; overflow-x: auto; }
nav { margin-top: 1.5em; font-size: .95em; }
"""


def page(title: str, body: str, status: int = 200) -> Response:
    """A whole page around ``body`` (already HTML; ``title`` is escaped here)."""
    text = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} · pbroker chat</title><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
    return Response.html(text, status=status, headers=[
        ("Cache-Control", "no-store"), ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                    "frame-ancestors 'none'"),
        ("Referrer-Policy", "no-referrer")])


NAV = '<nav><a href="/signup">Sign up</a> · <a href="/password">Change your password</a></nav>'

INDEX = ("<p>One account for the whole chat server: IRC and the pbroker client log in with the same "
         "username and password.</p>" + NAV)

SIGNUP_FORM = """{error}
<form method="post" action="/signup">
<input type="hidden" name="csrf" value="{token}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" maxlength="{max_name}" required
       autocomplete="username" autocapitalize="none" spellcheck="false">
<p class="hint">Your IRC nick too: letters, digits and <code>[]\\`_^{{|}}-</code>, at most {max_name}.</p>
<label for="password">Password</label>
<input type="password" id="password" name="password" required autocomplete="new-password">
<p class="hint">At least {min} characters; not your username, not a common password.</p>
<label for="confirm">Password again</label>
<input type="password" id="confirm" name="confirm" required autocomplete="new-password">
<button type="submit">Create account</button>
</form>
<nav><a href="/password">Change your password</a></nav>"""

PASSWORD_FORM = """{error}
<form method="post" action="/password">
<input type="hidden" name="csrf" value="{token}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" maxlength="{max_name}" required
       autocomplete="username" autocapitalize="none" spellcheck="false">
<label for="old">Current password</label>
<input type="password" id="old" name="old" required autocomplete="current-password">
<label for="new">New password</label>
<input type="password" id="new" name="new" required autocomplete="new-password">
<p class="hint">At least {min} characters; not your username, not a common password.</p>
<label for="confirm">New password again</label>
<input type="password" id="confirm" name="confirm" required autocomplete="new-password">
<button type="submit">Change password</button>
</form>
<nav><a href="/signup">Sign up</a></nav>"""

WELCOME = """<p class="ok" role="status">Your account <strong>{username}</strong> is ready.</p>
<p>Log in with the same username and password everywhere:</p>
<ul>
<li><strong>IRC</strong> (irssi, WeeChat, HexChat, …): connect to <code>{irc_host}</code> port
<code>{irc_port}</code>, nick <code>{username}</code>, with your password as the server password;
in irssi: <code>/connect -nick {username} {irc_host} {irc_port} YOUR-PASSWORD</code>.
A password with spaces must reach the server as one parameter (<code>PASS :your pass phrase</code>),
or use SASL PLAIN over TLS.</li>
<li><strong>pbroker</strong>: <code>python -m examples.chat.client {broker} {username}</code>, or from
Python: <code>await broker.login(reactor, "{broker}", UsernamePassword("{username}", password))</code>.</li>
</ul>"""

CHANGED = """<p class="ok" role="status">The password of <strong>{username}</strong> is changed.</p>
<p>Use the new one from your next login, over IRC and the broker alike; sessions already open stay open.</p>"""

FORBIDDEN = ("<p class=\"error\" role=\"alert\">This form has expired, or it was not sent from this "
             "site's own page (cookies must be on). Nothing was changed.</p>"
             '<p>Open the form again and resubmit it.</p>' + NAV)

TOO_MANY = ("<p class=\"error\" role=\"alert\">Too many attempts from your address: at most {n} a "
            "minute. Try again in {seconds} seconds.</p>" + NAV)

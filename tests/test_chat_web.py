"""The chat server's signup and change-password pages (examples/chat/web.py).

The must-show of issue 18: the signup page driven in REAL headless Chromium (Debian's chromium
and chromedriver, through selenium's WebDriver client), the account it creates then logging in
over the broker (SCRAM through a Portal whose checker is the same SQLUserDatabase) and over IRC
(PASS/NICK/USER on a raw socket: 001). Screenshots go to the test's tmp_path, and to
examples/chat/screenshots/ when ``PBROKER_UPDATE_SCREENSHOTS=1``.

Without a browser, over real sockets with http.client: CSRF (403), the rate limit (429), a huge
body (413), escaping, the password and username rules, and changing a password.

Everything runs against a fresh SQLite database through net.adbapi and cred.sqlstore; the
reactor serves in the test's thread while the browser and the http.client calls run in the
reactor's worker threads (``defer_to_thread``).
"""

from __future__ import annotations

import gc
import http.client
import os
import re
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import broker
from broker import Avatar
from cred.credentials import UsernamePassword
from cred.error import UnauthorizedLogin
from cred.portal import Portal, Realm
from cred.scram import MIN_ITERATIONS
from cred.sqlstore import SQLUserDatabase
from examples.chat.web import (
    COMMON_PASSWORDS,
    CsrfTokens,
    LoginHelp,
    RateLimiter,
    password_problem,
    username_problem,
    web_service,
)
from net.adbapi import ConnectionPool
from net.reactor import make_reactor
from net.web import WebService

SAFETY = 20.0  # socket timeouts: only a broken test ever waits this long
LOCAL = "tcp:0:interface=127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "examples" / "chat" / "screenshots"


class Me(Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def perspective_whoami(self) -> str:
        return self.name


@dataclass
class ChatSite:
    """What the tests run against: the pages, the store, and broker and IRC listeners on it."""

    pool: ConnectionPool
    users: SQLUserDatabase
    web: WebService
    web_port: int
    broker_port: Any
    irc_port: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def broker_endpoint(self) -> str:
        return f"tcp:127.0.0.1:{self.broker_port.get_host().port}"


@pytest.fixture
def reactor() -> Iterator[Any]:
    """One backend is enough here (net.web itself is tested on every one in test_web.py)."""
    r = make_reactor()
    try:
        yield r
    finally:
        gc.collect()
        r.close()


async def start_site(reactor: Any, db: Path, **options: Any) -> ChatSite:
    pool = ConnectionPool("sqlite3", str(db), reactor=reactor)
    users = SQLUserDatabase(pool, iterations=MIN_ITERATIONS)
    await users.create_table()
    portal = Portal(Realm(lambda avatar_id, mind: Me(str(avatar_id))), [users])
    broker_port = await broker.serve(reactor, LOCAL, portal)
    try:
        from examples.chat.irc import IRCFactory
        from examples.chat.model import ChatModel
    except ImportError:  # the CHAT helper's IRC side is not there: the IRC check skips
        irc_port = None
        irc = None
    else:
        irc_port = reactor.listen_tcp(0, IRCFactory(reactor, ChatModel(), users), interface="127.0.0.1")
        irc = f"127.0.0.1:{irc_port.get_host().port}"
    login_help = LoginHelp(irc=irc, broker=f"tcp:127.0.0.1:{broker_port.get_host().port}")
    web = web_service(reactor, LOCAL, users, login_help=login_help, **options)
    await web.start_service()
    assert web.port is not None
    return ChatSite(pool, users, web, web.port.get_host().port, broker_port, irc_port)  # type: ignore[union-attr]


async def stop_site(site: ChatSite) -> None:
    await site.web.stop_service()
    await site.broker_port.stop_listening()
    if site.irc_port is not None:
        await site.irc_port.stop_listening()
    await site.pool.close()


async def broker_whoami(reactor: Any, site: ChatSite, username: str, password: str) -> str:
    me = await broker.login(reactor, site.broker_endpoint, UsernamePassword(username, password))
    try:
        return str(await me.call_remote("whoami"))
    finally:
        me.session.disconnect()


def irc_register(port: int, nick: str, password: str) -> list[str]:
    """Register over IRC on a raw socket; the lines received up to 001 or an error (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(f"PASS :{password}\r\nNICK {nick}\r\nUSER {nick} 0 * :Web Signup\r\n".encode())
        lines: list[str] = []
        buffer = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return lines
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                parts = line.split()
                if len(parts) > 1 and parts[1] in ("001", "464", "433", "432") or line.startswith("ERROR"):
                    sock.sendall(b"QUIT :done\r\n")
                    return lines


# -- plain HTTP (no browser) --------------------------------------------------------------------


class Client:
    """An http.client connection that keeps the CSRF cookie, as a browser would."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
        self.cookie: str | None = None

    def close(self) -> None:
        self.conn.close()

    def request(self, method: str, path: str, body: str | bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";")[0]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def form_token(self, path: str) -> str:
        status, _, text = self.request("GET", path)
        assert status == 200
        match = re.search(r'name="csrf" value="([^"]+)"', text)
        assert match is not None, text
        return match.group(1)

    def post(self, path: str, fields: dict[str, str], token: str | None = None) -> tuple[int, dict[str, str], str]:
        if token is None:
            token = self.form_token(path)
        return self.request("POST", path, urllib.parse.urlencode({"csrf": token, **fields}))


def in_thread(reactor: Any, run: Any, site_options: dict[str, Any], db: Path, fn: Any) -> Any:
    """Start a site, run ``fn(site)`` in a worker thread, stop the site; ``fn``'s result."""
    async def scenario() -> Any:
        site = await start_site(reactor, db, **site_options)
        try:
            return await reactor.defer_to_thread(fn, site)
        finally:
            await stop_site(site)

    return run(reactor, scenario())


def test_signup_over_http_then_the_broker_login_works(reactor: Any, run: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        site = await start_site(reactor, tmp_path / "chat.sqlite")

        def sign_up() -> tuple[int, str]:
            client = Client(site.web_port)
            try:
                status, _, text = client.post("/signup", {"username": "carol", "password": "a long passphrase",
                                                          "confirm": "a long passphrase"})
                return status, text
            finally:
                client.close()

        try:
            status, text = await reactor.defer_to_thread(sign_up)
            assert status == 200 and "Your account <strong>carol</strong> is ready" in text
            assert await site.users.users() == ["carol"]
            assert await broker_whoami(reactor, site, "carol", "a long passphrase") == "carol"
            with pytest.raises(UnauthorizedLogin):
                await broker_whoami(reactor, site, "carol", "a wrong passphrase")
        finally:
            await stop_site(site)

    run(reactor, scenario())


def test_csrf_token_is_required_and_bound(reactor: Any, run: Any, tmp_path: Path) -> None:
    fields = {"username": "dave", "password": "a long passphrase", "confirm": "a long passphrase"}

    def attempts(site: ChatSite) -> list[int]:
        statuses = []
        client = Client(site.web_port)
        # No cookie, no token: a cross-site form post.
        statuses.append(client.request("POST", "/signup", urllib.parse.urlencode(fields))[0])
        # A cookie but no token.
        client.form_token("/signup")
        statuses.append(client.request("POST", "/signup", urllib.parse.urlencode(fields))[0])
        # A forged token.
        statuses.append(client.post("/signup", fields, token="1700000000." + "0" * 64)[0])
        # A token of the other form.
        statuses.append(client.post("/signup", fields, token=client.form_token("/password"))[0])
        # A token issued for another browser's cookie.
        other = Client(site.web_port)
        stolen = other.form_token("/signup")
        other.close()
        statuses.append(client.post("/signup", fields, token=stolen)[0])
        client.close()
        return statuses

    assert in_thread(reactor, run, {}, tmp_path / "chat.sqlite", attempts) == [403] * 5


def test_csrf_refusal_page_says_what_to_do(reactor: Any, run: Any, tmp_path: Path) -> None:
    def attempt(site: ChatSite) -> tuple[int, str]:
        client = Client(site.web_port)
        status, _, text = client.request("POST", "/password", "username=x&old=y&new=z")
        client.close()
        return status, text

    status, text = in_thread(reactor, run, {}, tmp_path / "chat.sqlite", attempt)
    assert status == 403 and "Open the form again and resubmit it" in text and "Nothing was changed" in text


def test_rate_limit_per_address(reactor: Any, run: Any, tmp_path: Path) -> None:
    def attempts(site: ChatSite) -> list[tuple[int, str | None]]:
        client = Client(site.web_port)
        got = []
        for _ in range(4):
            status, headers, _ = client.post("/signup", {"username": "eve", "password": "short", "confirm": "short"})
            got.append((status, headers.get("retry-after")))
        # The password form counts apart: one attempt there is still allowed.
        status, headers, _ = client.post("/password", {"username": "eve", "old": "x", "new": "y", "confirm": "y"})
        got.append((status, headers.get("retry-after")))
        client.close()
        return got

    got = in_thread(reactor, run, {"posts_per_minute": 3}, tmp_path / "chat.sqlite", attempts)
    assert [s for s, _ in got[:3]] == [400, 400, 400]  # refused passwords, but served
    assert got[3][0] == 429 and got[3][1] is not None and 1 <= int(got[3][1]) <= 60
    assert got[4][0] == 400


def test_huge_body_is_413(reactor: Any, run: Any, tmp_path: Path) -> None:
    def attempt(site: ChatSite) -> int:
        client = Client(site.web_port)
        token = client.form_token("/signup")
        body = urllib.parse.urlencode({"csrf": token, "username": "x" * 20000, "password": "p", "confirm": "p"})
        try:
            return client.request("POST", "/signup", body)[0]
        finally:
            client.close()

    assert in_thread(reactor, run, {}, tmp_path / "chat.sqlite", attempt) == 413


def test_rules_and_escaping_in_the_page(reactor: Any, run: Any, tmp_path: Path) -> None:
    def attempts(site: ChatSite) -> list[tuple[int, str]]:
        client = Client(site.web_port)
        out = []
        for fields in (
            {"username": "<b>hi</b>&", "password": "a long passphrase", "confirm": "a long passphrase"},
            {"username": "frank", "password": "frankfrankfrank"[:5], "confirm": "frank"},
            {"username": "FrankTheTank", "password": "franktheTANK", "confirm": "franktheTANK"},
            {"username": "frank", "password": "qwertyuiop123", "confirm": "qwertyuiop123"},
            {"username": "frank", "password": "a long passphrase", "confirm": "a longer passphrase"},
            {"username": "seventeen_chars_x", "password": "a long passphrase", "confirm": "a long passphrase"},
            {"username": "frank", "password": "a long passphrase", "confirm": "a long passphrase"},
            {"username": "FRANK", "password": "a long passphrase", "confirm": "a long passphrase"},
        ):
            status, _, text = client.post("/signup", fields)
            out.append((status, text))
        client.close()
        return out

    got = in_thread(reactor, run, {"posts_per_minute": 100}, tmp_path / "chat.sqlite", attempts)
    texts = [t for _, t in got]
    assert [s for s, _ in got] == [400, 400, 400, 400, 400, 400, 200, 400]
    assert "<b>hi" not in texts[0] and 'value="&lt;b&gt;hi&lt;/b&gt;&amp;"' in texts[0]
    assert "A username is an IRC nick" in texts[0]
    assert "at least 10 characters" in texts[1]
    assert "must not be your username" in texts[2]
    assert "most common" in texts[3]
    assert "two passwords differ" in texts[4]
    assert "at most 16 characters" in texts[5]
    assert "is ready" in texts[6]
    assert "FRANK is taken" in texts[7]  # IRC compares nicks ignoring case


def test_change_password(reactor: Any, run: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        site = await start_site(reactor, tmp_path / "chat.sqlite")
        await site.users.add_user("gina", "first passphrase")

        def change() -> list[tuple[int, str]]:
            client = Client(site.web_port)
            got = []
            for fields in (
                {"username": "gina", "old": "wrong passphrase", "new": "second passphrase", "confirm": "second passphrase"},
                {"username": "nobody", "old": "first passphrase", "new": "second passphrase", "confirm": "second passphrase"},
                {"username": "gina", "old": "first passphrase", "new": "short", "confirm": "short"},
                {"username": "gina", "old": "first passphrase", "new": "second passphrase", "confirm": "second passphrase"},
            ):
                status, _, text = client.post("/password", fields)
                got.append((status, text))
            client.close()
            return got

        try:
            got = await reactor.defer_to_thread(change)
            assert [s for s, _ in got] == [400, 400, 400, 200]
            assert got[0][1].count("The username or the current password is wrong") == 1
            assert "The username or the current password is wrong" in got[1][1]  # no hint which
            assert "at least 10 characters" in got[2][1]
            assert "is changed" in got[3][1]
            assert await broker_whoami(reactor, site, "gina", "second passphrase") == "gina"
            with pytest.raises(UnauthorizedLogin):
                await broker_whoami(reactor, site, "gina", "first passphrase")
        finally:
            await stop_site(site)

    run(reactor, scenario())


def test_other_paths_and_methods(reactor: Any, run: Any, tmp_path: Path) -> None:
    def attempts(site: ChatSite) -> list[int]:
        client = Client(site.web_port)
        got = [client.request("GET", "/")[0], client.request("GET", "/nope")[0],
               client.request("DELETE", "/signup")[0], client.request("HEAD", "/signup")[0]]
        client.close()
        return got

    assert in_thread(reactor, run, {}, tmp_path / "chat.sqlite", attempts) == [200, 404, 405, 200]


def test_the_chat_app_serves_the_pages_on_its_own_user_database(reactor: Any, run: Any, tmp_path: Path) -> None:
    """examples/chat/app.py's wiring: an account made on its --web pages logs in on its broker
    listener and its IRC listener (one SQLUserDatabase behind all three)."""
    app = pytest.importorskip("examples.chat.app", reason="examples/chat/app.py is not importable")
    before = set(os.listdir("/proc/self/fd"))

    async def scenario() -> tuple[int, str, list[str]]:
        options = app.ChatOptions(irc=[LOCAL], web=LOCAL, db=str(tmp_path / "chat.sqlite"))
        server = app.build(reactor, options, [LOCAL])
        await server.service.start_service()
        try:
            web_port = server.web_services[0].port.get_host().port

            def sign_up() -> tuple[int, str]:
                client = Client(web_port)
                try:
                    status, _, text = client.post("/signup", {"username": "hana", "password": "app passphrase",
                                                              "confirm": "app passphrase"})
                    return status, text
                finally:
                    client.close()

            status, text = await reactor.defer_to_thread(sign_up)
            endpoint = f"tcp:127.0.0.1:{server.broker_services[0].port.get_host().port}"
            me = await broker.login(reactor, endpoint, UsernamePassword("hana", "app passphrase"))
            me.session.disconnect()
            irc = await reactor.defer_to_thread(
                irc_register, server.irc_services[0].port.get_host().port, "hana", "app passphrase")
            return status, text, irc
        finally:
            await server.service.stop_service()

    status, text, irc = run(reactor, scenario(), timeout=60)
    assert status == 200 and "is ready" in text
    assert any(line.split()[1:2] == ["001"] for line in irc), irc
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) == before


def test_rules_units() -> None:
    assert username_problem("alice") is None and username_problem("a[b]c-d_e^") is None
    assert username_problem("") and username_problem("1abc") and username_problem("-x")
    assert username_problem("a b") and username_problem("é") and username_problem("x" * 17)
    assert password_problem("alice", "correct horse") is None
    assert password_problem("alice", "x" * 9) and password_problem("alicealice", "AliceAlice")
    assert all(len(p) >= 10 for p in COMMON_PASSWORDS)  # shorter ones fail the length rule anyway
    assert password_problem("bob", "Password123")  # common, any case


def test_csrf_tokens_and_rate_limiter_units() -> None:
    now = [1000.0]
    tokens = CsrfTokens(b"k" * 32, lambda: now[0], lifetime=60)
    token = tokens.issue("signup", "c" * 32)
    assert tokens.check("signup", "c" * 32, token)
    assert not tokens.check("password", "c" * 32, token)
    assert not tokens.check("signup", "d" * 32, token)
    assert not tokens.check("signup", None, token) and not tokens.check("signup", "c" * 32, None)
    assert not CsrfTokens(b"j" * 32, lambda: now[0]).check("signup", "c" * 32, token)  # another secret
    assert not tokens.check("signup", "c" * 32, "x" + token) and not tokens.check("signup", "c" * 32, "nodot")
    now[0] += 61
    assert not tokens.check("signup", "c" * 32, token)  # expired
    with pytest.raises(ValueError, match="16 random bytes"):
        CsrfTokens(b"short", lambda: 0.0)

    limiter = RateLimiter(2, 60, lambda: now[0], max_keys=3)
    assert limiter.allow("a") is None and limiter.allow("a") is None
    assert limiter.allow("a") == 60
    now[0] += 30
    assert limiter.allow("a") == 30
    now[0] += 30
    assert limiter.allow("a") is None  # the first two left the window
    for key in "bcde":
        limiter.allow(key)
    assert len(limiter._events) == 3  # bounded: the oldest address was forgotten


# -- in a real browser --------------------------------------------------------------------------


def chromium_driver(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=900,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def click_and_wait_for_the_next_page(driver: Any, element: Any) -> None:
    """Click ``element`` (a submit button, a link) and wait until the page it leads to replaced this one.

    WebDriver's click returns once the click is dispatched, not once the navigation it starts is
    done: a find right after it may run on the old page (the signup form has no ``.ok``; after the
    first submit the second form has the same fields). So mark the old document (a new one does
    not have the mark) and wait for an unmarked, loaded one. While the page changes, chromedriver
    may answer a poll with an error about the departing document: that poll just does not count.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    driver.execute_script("window.pbrokerOldPage = true;")
    element.click()
    WebDriverWait(driver, SAFETY, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.pbrokerOldPage && document.readyState === 'complete';"),
        message="the click did not lead to a new page")


def browser_session(site: ChatSite, shots: Path) -> dict[str, str]:
    """Sign up in Chromium: a bad password first, then a good one; change it. The texts seen."""
    from selenium.webdriver.common.by import By

    profile = tempfile.mkdtemp(prefix="pbroker-chromium-")
    driver = chromium_driver(profile)
    seen: dict[str, str] = {}
    try:
        driver.get(site.url + "/signup")
        seen["signup"] = driver.find_element(By.TAG_NAME, "h1").text
        driver.save_screenshot(str(shots / "signup.png"))

        def fill(**fields: str) -> None:
            for name, value in fields.items():
                element = driver.find_element(By.NAME, name)
                element.clear()
                element.send_keys(value)
            click_and_wait_for_the_next_page(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))

        fill(username="webuser", password="short", confirm="short")
        seen["error"] = driver.find_element(By.CSS_SELECTOR, ".error").text
        seen["error_username"] = driver.find_element(By.NAME, "username").get_attribute("value") or ""
        driver.save_screenshot(str(shots / "signup-error.png"))

        fill(password="web signup passphrase", confirm="web signup passphrase")
        seen["success"] = driver.find_element(By.CSS_SELECTOR, ".ok").text
        driver.save_screenshot(str(shots / "signup-success.png"))

        click_and_wait_for_the_next_page(driver, driver.find_element(By.LINK_TEXT, "Change your password"))
        fill(username="webuser", old="web signup passphrase", new="changed in chromium", confirm="changed in chromium")
        seen["changed"] = driver.find_element(By.CSS_SELECTOR, ".ok").text
        driver.save_screenshot(str(shots / "password-changed.png"))
    except Exception as exc:
        # What the page said when an expected element was missing: the only useful clue.
        (shots / "failure.html").write_text(driver.page_source)
        driver.save_screenshot(str(shots / "failure.png"))
        exc.add_note(f"the page then: {shots / 'failure.html'} and {shots / 'failure.png'}")
        raise
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return seen


def test_signup_in_chromium_then_login_over_broker_and_irc(reactor: Any, run: Any, tmp_path: Path) -> None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            pytest.skip(f"{program} is not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    shots = tmp_path / "screenshots"
    shots.mkdir()

    async def scenario() -> dict[str, Any]:
        site = await start_site(reactor, tmp_path / "chat.sqlite")
        try:
            seen: dict[str, Any] = await reactor.defer_to_thread(browser_session, site, shots)
            seen["users"] = await site.users.users()
            seen["broker"] = await broker_whoami(reactor, site, "webuser", "changed in chromium")
            with pytest.raises(UnauthorizedLogin):
                await broker_whoami(reactor, site, "webuser", "web signup passphrase")  # the old one
            if site.irc_port is not None:
                seen["irc"] = await reactor.defer_to_thread(
                    irc_register, site.irc_port.get_host().port, "webuser", "changed in chromium")
                seen["irc_wrong"] = await reactor.defer_to_thread(
                    irc_register, site.irc_port.get_host().port, "webuser", "web signup passphrase")
            return seen
        finally:
            await stop_site(site)

    seen = run(reactor, scenario(), timeout=90)
    assert seen["signup"] == "Sign up"
    assert "at least 10 characters" in seen["error"] and seen["error_username"] == "webuser"
    assert "Your account webuser is ready" in seen["success"]
    assert "The password of webuser is changed" in seen["changed"]
    assert seen["users"] == ["webuser"] and seen["broker"] == "webuser"
    for name in ("signup", "signup-error", "signup-success", "password-changed"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("PBROKER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copyfile(png, SCREENSHOTS / png.name)
    if "irc" not in seen:
        pytest.skip("examples/chat/irc.py is not importable: the IRC login was not tried")
    assert any(line.split()[1:2] == ["001"] for line in seen["irc"]), seen["irc"]
    assert not any(line.split()[1:2] == ["001"] for line in seen["irc_wrong"]), seen["irc_wrong"]

"""Browser mode as a user behind an SSH tunnel meets it: `tunedeck-serve` on a loopback port, driven
by a real headless Chromium (Playwright on Debian's /usr/bin/chromium, no browser download).

What the browser shows is read back with pyte from the very bytes the page's terminal received
(the terminal draws on a canvas), and screenshots are taken of the page itself. Every request the
browser makes goes through a route that lets only the server through, so a page that tried to
reach another host (fonts, icons) would show up in `Browser.blocked`.

The screenshots in docs/ come from this file: `TUNEDECK_UPDATE_SCREENSHOTS=1 python -m pytest
tests/test_browser_mode.py` copies them there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, python_env
from runner.schema import FIELDS_BY_KEY
from tui import drafts
from tui.serve import main as serve_main, parse_origin, parser, prepare, UsageError

pytest.importorskip("textual_serve", reason="browser mode needs the serve extra: pip install 'tunedeck[serve]'")
aiohttp = pytest.importorskip("aiohttp")

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own background traffic (updates, sync, field trials, QUIC probes) is switched off:
# the page's requests are the only ones, and this closed network refuses every other host.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = ROOT / "docs"
START_TIMEOUT = 120  # seconds: the machine is shared, and the first tab also starts Python and Textual
RUN_TIMEOUT = 600  # the demo run launched from the page, on two busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


class Served:
    """A running `tunedeck-serve`: its URL (with the token), port and everything it printed."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        match = re.search(r"^\s+(http://\S+)$", self.output, re.M)
        assert match, self.output
        return match.group(1)

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serve(tmp_path: Path, *args: str, options: tuple[str, ...] = ()) -> Iterator[Served]:
    """Start tunedeck-serve on a free loopback port, in its own working directory (a new login's
    cwd, not the checkout); ready once its icon answers; stopped with its tabs' apps by pid."""
    port = free_port()
    cwd = tmp_path / "login"
    cwd.mkdir(exist_ok=True)
    env = python_env()
    env["COLUMNS"] = "250"  # the server's log lines unwrapped
    process = subprocess.Popen([sys.executable, "-m", "tui.serve", "--port", str(port), *options, *args],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    served = Served(process, port)

    def ready() -> bool:
        assert process.poll() is None, f"tunedeck-serve exited {process.returncode}:\n{served.output}"
        try:
            with urllib.request.urlopen(f"{served.base}/favicon.ico", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(ready, START_TIMEOUT, "tunedeck-serve to answer")
        yield served
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and the apps it started for our tabs
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


class Tab:
    """A browser tab on the server, with a pyte copy of its terminal."""

    def __init__(self, page, served: Served) -> None:
        import pyte

        self.page = page
        self.served = served
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.sockets: list[str] = []
        self.socket_closed = False
        page.on("websocket", self._socket)

    def _socket(self, ws) -> None:
        self.sockets.append(ws.url)
        query = dict(part.split("=", 1) for part in urlsplit(ws.url).query.split("&") if "=" in part)
        self.screen.resize(int(query.get("height", 24)), int(query.get("width", 80)))

        def received(payload) -> None:
            if isinstance(payload, bytes):
                self.stream.feed(payload)

        def sent(payload) -> None:
            if isinstance(payload, str) and payload.startswith('["resize"'):
                size = json.loads(payload)[1]
                self.screen.resize(size["height"], size["width"])

        ws.on("framereceived", received)
        ws.on("framesent", sent)
        ws.on("close", lambda _ws: setattr(self, "socket_closed", True))

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, condition: Callable[[str], object], what: str, timeout: float = START_TIMEOUT) -> object:
        """Poll the terminal's text (letting the browser run in between) until `condition` holds."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition(self.text)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; the tab shows:\n"
                                     f"{self.text}\nserver said:\n{self.served.output[-3000:]}")
            self.page.wait_for_timeout(200)

    def wait_for_text(self, text: str, timeout: float = START_TIMEOUT) -> None:
        self.wait_for(lambda shown: text in shown, repr(text), timeout)

    def press(self, key: str, then: Callable[[str], object], what: str) -> None:
        self.page.keyboard.press(key)
        self.wait_for(then, what)

    def field_value(self, label: str) -> str | None:
        """What the editor's form shows under a field's label (its value, or the empty field's hint)."""
        column = [(line.split("│") + [""] * 4)[3].strip() for line in self.screen.display]
        for i, text in enumerate(column[:-1]):
            if text.lstrip("● ") == label:
                return column[i + 1]
        return None

    def help_title(self) -> str:
        """The first two lines of the help panel (the editor's right column, top box): the field's
        label and key, which wrap onto the second line when long."""
        heads = []
        for line in self.screen.display[2:4]:
            parts = [p.strip() for p in line.split("│")]
            heads.append(parts[-2] if len(parts) >= 3 else "")
        return " ".join(heads)


class Browser:
    """One headless Chromium with a fresh profile; every request not for the server is blocked and noted."""

    def __init__(self, playwright, profile: Path, served: Served) -> None:
        self.served = served
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.responses: dict[str, int] = {}
        self.other_sites: dict[str, str] = {}  # URL -> HTML that a test serves as another site
        self.passed: set[str] = set()  # other host:ports a test lets through
        self.context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800}, service_workers="block")
        self.context.route("**/*", self._route)
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.on("response", lambda response: self.responses.__setitem__(response.url, response.status))

    def _route(self, route) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme == "http" and parts.netloc in (f"127.0.0.1:{self.served.port}", *self.passed):
            route.continue_()
        elif route.request.url in self.other_sites:  # answered here: it never reaches a network
            route.fulfill(status=200, content_type="text/html", body=self.other_sites[route.request.url])
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def open(self, url: str | None = None) -> Tab:
        page = self.context.new_page()
        tab = Tab(page, self.served)
        page.goto(url or self.served.url)
        return tab

    def assert_nothing_left_the_server(self) -> None:
        assert self.blocked == [], f"the page tried other hosts: {self.blocked}"
        for url in self.requests:
            assert urlsplit(url).netloc == f"127.0.0.1:{self.served.port}", url


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        if os.environ.get("TUNEDECK_REQUIRE_BROWSER") == "1":  # CI installs it: missing is a failure there
            pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    if os.environ.get("TUNEDECK_REQUIRE_BROWSER") == "1":
        from playwright.sync_api import sync_playwright  # noqa: F401 - fail, not skip, in CI
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
    pytest.importorskip("pyte", reason="needs pyte: pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        yield p


@contextmanager
def other_local_site() -> Iterator[str]:
    """Another web app on this machine (another port): a different origin, the same site for cookies."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>another local web app</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser(playwright, tmp_path: Path, served: Served) -> Iterator[Browser]:
    b = Browser(playwright, tmp_path / f"profile-{time.monotonic_ns()}", served)
    try:
        yield b
    finally:
        b.context.close()


def screenshot(tab: Tab, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    tab.page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one
    if os.environ.get("TUNEDECK_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)
    return shot


def runs_json(cwd: Path) -> list[dict]:
    """What `tunedeck runs --json` lists from the server's working directory and environment."""
    done = subprocess.run([sys.executable, "-m", "tui.cli", "runs", "--json"], cwd=cwd, env=python_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def editor_drawn(text: str) -> bool:
    return "Batch & steps" in text and "total steps" in text and "demo" in text


# --- the whole session: editor, keys, an edit, drafts per tab, launch, monitor -----------------------------
@pytest.mark.slow
def test_editor_keys_edit_launch_and_monitor_in_a_real_browser(playwright, tmp_path: Path) -> None:
    with serve(tmp_path) as served, browser(playwright, tmp_path, served) as b:
        tab = b.open()
        tab.wait_for(editor_drawn, "the editor with the demo preset")

        # The terminal has the keyboard on load: no click anywhere, the keys drive the section list.
        assert tab.page.evaluate("document.activeElement.className") == "xterm-helper-textarea"
        tab.press("ArrowDown", lambda t: "─ Data " in t, "Down to pick the Data group")
        for _ in range(3):
            tab.page.keyboard.press("ArrowDown")
        tab.wait_for_text("─ Batch & steps ")

        # Into the group's fields, on to Max steps (the help panel follows the focus), and edit it.
        tab.page.keyboard.press("Tab")
        tab.wait_for(lambda t: "training." in tab.help_title(), "a Batch field's help")
        for _ in range(12):
            if "training.max_steps" in tab.help_title():
                break
            before = tab.help_title()
            tab.press("Tab", lambda t: tab.help_title() != before, "the next field")
        assert "training.max_steps" in tab.help_title(), tab.text
        # One key at a time, each seen on screen before the next, as a user over a slow tunnel types:
        # the row is rebuilt when max_steps turns positive (other fields stop applying).
        tab.page.keyboard.press("End")
        tab.press("Backspace", lambda t: tab.field_value("Max steps") == "-", "'-1' -> '-'")
        hint = FIELDS_BY_KEY["training.max_steps"].allowed()  # what the empty field shows
        emptied = lambda t: len(tab.field_value("Max steps") or "") > 3 and hint.startswith(tab.field_value("Max steps"))
        tab.press("Backspace", emptied, "an empty field")
        tab.press("1", lambda t: tab.field_value("Max steps") == "1" and re.search(r"total steps 1\b", t), "1")
        tab.press("0", lambda t: tab.field_value("Max steps") == "10" and re.search(r"total steps 10\b", t), "10")
        tab.page.keyboard.press("Tab")
        wait_until(lambda: list(drafts.drafts_dir().glob("*.json")), 60, "the autosaved draft of the edit")
        screenshot(tab, tmp_path, "browser-editor.png")

        # A second tab is a session of its own: it is not offered the first tab's unsaved edit.
        other = b.open()
        assert drafts.latest_draft() is None  # the first tab is open: its draft is not anyone else's
        other.wait_for(lambda t: editor_drawn(t) and "Peak" in t, "the second tab's editor and estimate")
        other.press("ArrowDown", lambda t: "─ Data " in t, "Down in the second tab (no dialog in the way)")
        assert "Restore draft" not in other.text and "(modified)" not in other.text  # the preset as shipped
        other.page.close()

        # F5: the launch dialog, Enter: the monitor, with the run's first loss point on the plot.
        tab.press("F5", lambda t: "accelerate" in t, "the launch dialog")
        tab.page.keyboard.press("Enter")
        tab.wait_for(lambda t: re.search(r"step \d+/10\b", t), "the monitor")
        tab.wait_for(lambda t: "loss · x: step" in t, "the first loss point", timeout=RUN_TIMEOUT)
        tab.wait_for(lambda t: re.search(r"finished\s+step 10/10", t), "the run to finish", timeout=RUN_TIMEOUT)
        screenshot(tab, tmp_path, "browser-monitor.png")

        # The run lives where every run lives (the runs home), found by a later login's `tunedeck runs`.
        # The monitor shows "finished" from the run's last event; the trainer may still be exiting (its
        # lock held), so the listing is asked until the run has settled.
        settled = lambda: [r for r in runs_json(tmp_path / "login") if r["state"] != "running"]
        wait_until(settled, RUN_TIMEOUT, "the run to settle in `tunedeck runs`", step=1.0)
        runs = runs_json(tmp_path / "login")
        assert len(runs) == 1 and runs[0]["state"] == "finished" and runs[0]["step"] == 10, runs
        assert isinstance(runs[0]["last_loss"], float)
        assert Path(runs[0]["path"]).resolve().is_relative_to(tmp_path.resolve())

        # Closing the first tab ends its session: now a new tab is offered its edits.
        tab.page.close()
        wait_until(drafts.latest_draft, 60, "the closed tab's draft to become offerable")
        again = b.open()
        again.wait_for_text("Restore draft")
        assert "demo" in again.text
        b.assert_nothing_left_the_server()
        # fonts and the icon came from the server itself
        assert b.responses.get(f"{served.base}/static/fonts/RobotoMono-VariableFont_wght.ttf") == 200


def test_runs_screen_renders_in_a_real_browser(playwright, tmp_path: Path) -> None:
    with serve(tmp_path, "runs") as served, browser(playwright, tmp_path, served) as b:
        tab = b.open()
        tab.wait_for(lambda t: "runs — " in t and "No runs" in t and "best eval" in t, "the runs screen")
        assert "Batch & steps" not in tab.text  # the runs screen, not the editor underneath
        # keys work without a click: `e` opens the editor underneath (Esc here quits, as in `tunedeck runs`)
        assert tab.page.evaluate("document.activeElement.className") == "xterm-helper-textarea"
        tab.press("e", editor_drawn, "e opens the editor underneath")
        b.assert_nothing_left_the_server()


def test_a_foreign_page_cannot_open_the_socket_even_with_the_token_cookie(playwright, tmp_path: Path) -> None:
    """The attack the issue names: while the tunnel is up, a page of another site opens the socket.
    One on another local port counts as the same site for cookies, so it even carries the token
    cookie: only the Origin check stands in its way."""
    with serve(tmp_path) as served, browser(playwright, tmp_path, served) as b:
        tab = b.open()  # the user's own tab: the browser now holds the token cookie
        tab.wait_for(editor_drawn, "the editor")
        evil = "http://evil.example.com/"
        b.other_sites[evil] = "<html><body>cat pictures</body></html>"
        attempt = """url => new Promise(done => {
            const ws = new WebSocket(url);
            ws.onopen = () => done("opened");
            ws.onerror = () => done("refused");
        })"""
        page = b.context.new_page()
        with other_local_site() as other_app:
            b.passed.add(urlsplit(other_app).netloc)
            page.goto(other_app)
            assert page.evaluate(attempt, f"ws://127.0.0.1:{served.port}/ws") == "refused"
        wait_until(lambda: "refused GET '/ws'" in served.output and "Origin is not" in served.output, 60,
                   f"the server to log the refusal; it said:\n{served.output}")
        page.goto(evil)  # a public site: refused too (by the server, or by Chromium before it)
        assert page.evaluate(attempt, f"ws://127.0.0.1:{served.port}/ws?token={served.token}") == "refused"
        assert tab.sockets and not tab.socket_closed  # the user's own tab kept working
        tab.press("ArrowDown", lambda t: "─ Data " in t, "a key in the user's own tab")


# --- the guard without a browser: every refusal, by status -------------------------------------------------
def in_thread(coroutine):
    """Run a coroutine to its end on a thread of its own (Playwright's sync API holds this thread's loop)."""
    result: dict = {}

    def work() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the test's thread
            result["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


async def _status(url: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            return response.status


async def _socket(url: str, cookies: dict | None = None, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession(cookies=cookies) as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                screen = b""
                deadline = time.monotonic() + START_TIMEOUT
                while time.monotonic() < deadline and b"Batch" not in screen:
                    try:
                        message = await ws.receive(timeout=2)
                    except asyncio.TimeoutError:
                        continue
                    if message.type == aiohttp.WSMsgType.BINARY:
                        screen += message.data
                    elif message.type != aiohttp.WSMsgType.TEXT:
                        break
                return 101, screen
        except aiohttp.WSServerHandshakeError as error:
            return error.status, b""


def test_page_socket_and_downloads_need_the_token_and_this_servers_address(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        base, token, mine = served.base, served.token, f"http://127.0.0.1:{served.port}"
        assert served.output.count(token) == 1  # printed once, in the URL
        run = in_thread
        assert run(_status(f"{base}/")) == 403
        assert run(_status(f"{base}/?token=wrong{token}")) == 403
        assert run(_status(f"{base}/?token={token}")) == 200
        assert run(_status(f"{base}/?token={token}", Host="evil.example.com")) == 403  # DNS rebinding
        assert run(_status(f"{base}/?token={token}", Host=f"evil.example.com:{served.port}")) == 403
        assert run(_status(f"{base}/?token={token}", Origin="http://evil.example.com")) == 403
        assert run(_status(f"{base}/download/x?token={token}", Origin="null")) == 403
        assert run(_status(f"{base}/download/x")) == 403
        assert run(_status(f"{base}/favicon.ico")) == 200
        assert run(_status(f"{base}/static/fonts/RobotoMono-VariableFont_wght.ttf")) == 200
        assert run(_status(f"{base}/static/js/textual.js", Host="evil.example.com")) == 403
        # the socket: no token, foreign Origin, wrong cookie: refused before any app starts
        assert run(_socket(f"{base}/ws"))[0] == 403
        assert run(_socket(f"{base}/ws?token={token}", Origin="http://evil.example.com"))[0] == 403
        assert run(_socket(f"{base}/ws?token={token}", Origin=f"http://127.0.0.1:{served.port + 1}"))[0] == 403
        assert run(_socket(f"{base}/ws", cookies={f"tunedeck-serve-{served.port}": "nope"}, Origin=mine))[0] == 403
        # with the token (the page's cookie, or the URL) and this server's Origin: the editor streams
        status, screen = run(_socket(f"{base}/ws", cookies={f"tunedeck-serve-{served.port}": token}, Origin=mine))
        assert status == 101 and b"Batch" in screen
        assert "refused GET '/ws'" in served.output and token not in served.output.split("Press Ctrl+C", 1)[1]


def test_no_auth_turns_off_the_token_but_not_the_address_checks(tmp_path: Path) -> None:
    with serve(tmp_path, options=("--no-auth", "--allow-origin", "http://localhost:9999")) as served:
        assert "token" not in served.url and "no access token" in served.output
        run = in_thread
        assert run(_status(f"{served.base}/")) == 200
        assert run(_status(f"{served.base}/", Host="localhost:9999")) == 200  # the allowed extra address
        assert run(_status(f"{served.base}/", Origin="http://localhost:9999")) == 200
        assert run(_status(f"{served.base}/", Host="evil.example.com")) == 403
        assert run(_socket(f"{served.base}/ws", Origin="http://evil.example.com"))[0] == 403


def test_a_non_loopback_address_warns_and_always_needs_the_token(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tui.serve", "--host", "0.0.0.0", "--no-auth"], cwd=tmp_path,
                          env=python_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--no-auth is refused on 0.0.0.0" in done.stderr and not done.stdout
    with serve(tmp_path, options=("--host", "0.0.0.0")) as served:
        assert "warning: listening on 0.0.0.0, not a loopback address" in served.output
        assert "?token=" in served.url
        assert in_thread(_status(f"{served.base}/")) == 403
        assert in_thread(_status(f"{served.base}/?token={served.token}")) == 200


@pytest.mark.parametrize("argv, message", [
    (["--token", "short"], "--token: allowed 16 to 256 characters"),
    (["--token", "has spaces in it, sixteen+"], "--token: allowed 16 to 256 characters"),
    (["--token", "a" * 20, "--no-auth"], "contradict"),
    (["--allow-origin", "evil.example.com"], "not an origin: 'evil.example.com'"),
    (["--allow-origin", "http://x.example/path"], "not an origin"),
    (["--port", "70000"], "--port 70000: allowed 1-65535"),
])
def test_bad_options_are_one_line_errors(argv: list[str], message: str, capsys) -> None:
    assert serve_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_token_comes_from_the_environment_when_not_given(monkeypatch) -> None:
    monkeypatch.setenv("TUNEDECK_SERVE_TOKEN", "from-the-environment-1234")
    guard, url, warnings = prepare(parser().parse_args([]))
    assert url == "http://127.0.0.1:8000/?token=from-the-environment-1234" and not warnings
    assert guard.token_ok("from-the-environment-1234") and not guard.token_ok("from-the-environment-123")
    monkeypatch.delenv("TUNEDECK_SERVE_TOKEN")
    first, second = (prepare(parser().parse_args([]))[0].token for _ in range(2))
    assert first != second and len(first) >= 32  # a new random one each start


def test_origins_are_compared_normalised() -> None:
    assert parse_origin("HTTP://LocalHost:80") == ("http://localhost:80", "localhost:80")
    assert parse_origin("https://[::1]") == ("https://[::1]:443", "[::1]:443")
    with pytest.raises(UsageError):
        parse_origin("null")


def test_without_textual_serve_it_says_how_to_install() -> None:
    code = ("import sys; sys.modules['textual_serve'] = None; sys.modules['textual_serve.server'] = None\n"
            "from tui.serve import main; sys.exit(main(['--port', '1']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=python_env(), capture_output=True, text=True)
    assert done.returncode == 1 and "pip install 'tunedeck[serve]'" in done.stderr


def test_a_taken_port_is_a_one_line_error_before_any_url(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tui.serve", "--port", str(port)], cwd=tmp_path,
                              env=python_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and not done.stdout
    assert done.stderr == f"tunedeck-serve: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"

"""Browser mode: serve the tunedeck TUI as a web page with textual-serve, behind an access token.

    tunedeck-serve [--host 127.0.0.1] [--port 8000] [--token T | --no-auth] [--allow-origin URL]... [TUNEDECK ARGS...]
    tunedeck-serve --port 8000 runs          # the runs screen instead of the editor

Each browser tab gets its own tunedeck process, started with the arguments given here. The page
is meant to be reached through an SSH tunnel (`ssh -L 8000:127.0.0.1:8000 gpu-box`), and while
the tunnel is up any web page the user visits can send requests to it. So, in front of
textual-serve's own handlers (a middleware on its aiohttp app, not a fork):

- every request must name this server in `Host` (and, when a browser sends one, `Origin`): the
  address it listens on, or one given with --allow-origin. That stops other sites' pages and DNS
  rebinding;
- the page, the socket and downloads need the access token: generated at start (or --token, or
  $TUNEDECK_SERVE_TOKEN), printed once inside the URL to open. Opening that URL also stores the
  token in a same-site cookie, which the page's socket carries. --no-auth turns the token off,
  and only on a loopback address: listening on any other address warns and always needs it.

The page itself is ours (tui/web/app_index.html): it loads nothing from other sites, gives the
terminal the keyboard once the app has drawn, and serves an icon.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import re
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

WEB_DIR = Path(__file__).resolve().parent / "web"
TOKEN_ENV = "TUNEDECK_SERVE_TOKEN"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{16,256}")  # goes into a URL unquoted
SCREEN_ENV = "TUNEDECK_RUNS_SCREEN"  # tui.cli: `runs` opens its screen although stdin/stdout are pipes
OPEN_PATHS = ("/static/", "/favicon.ico")  # textual-serve's script, styles, fonts; our icon: no token
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
EXIT_USAGE = 2

log = logging.getLogger("tunedeck-serve")


class UsageError(ValueError):
    """A bad option: printed as one line, exit 2."""


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def netloc(host: str, port: int) -> str:
    host = host.lower().strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_origin(url: str) -> tuple[str, str]:
    """(origin, host:port) of an http(s) URL, normalised; UsageError when it is not one."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or \
            parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise UsageError(f"not an origin: {url!r} (allowed: http://HOST[:PORT] or https://HOST[:PORT])")
    port = port or (443 if parts.scheme == "https" else 80)
    address = netloc(parts.hostname, port)
    return f"{parts.scheme}://{address}", address


@dataclass
class Guard:
    """Which requests may reach textual-serve: by Host, Origin and access token."""

    token: str | None  # None: --no-auth
    hosts: set[str] = field(default_factory=set)  # allowed Host headers, as host:port
    origins: set[str] = field(default_factory=set)  # allowed Origin headers, as scheme://host:port
    cookie: str = "tunedeck-serve"

    def allow(self, url: str) -> None:
        origin, address = parse_origin(url)
        self.origins.add(origin)
        self.hosts.add(address)

    def host_allowed(self, header: str | None) -> bool:
        if not header:
            return False
        try:
            origin, address = parse_origin(f"http://{header}")
        except UsageError:
            return False
        return address in self.hosts

    def origin_allowed(self, header: str | None) -> bool:
        if header is None:
            return True  # not a browser request made by a page (curl, a navigation): Host and token decide
        try:
            origin, _ = parse_origin(header)
        except UsageError:
            return False  # "null" (sandboxed frames, file://) and anything odd
        return origin in self.origins

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def refusal(self, path: str, headers: Any, query: Any, cookies: Any) -> str | None:
        """Why a request is refused (403), or None when it may pass."""
        if not self.host_allowed(headers.get("Host")):
            return "Host is not this server's address"
        if not self.origin_allowed(headers.get("Origin")):
            return "Origin is not this server's address"
        if path == "/favicon.ico" or path.startswith(OPEN_PATHS[0]):
            return None
        if not (self.token_ok(query.get("token")) or self.token_ok(cookies.get(self.cookie))):
            return "the access token is missing or wrong"
        return None


def build_guard(host: str, port: int, token: str | None, public_url: str | None, allowed: Sequence[str]) -> Guard:
    guard = Guard(token=token, cookie=f"tunedeck-serve-{port}")  # one cookie per port: cookies ignore ports
    names = [host]
    if is_loopback(host) or host in WILDCARDS:
        names += LOOPBACK_NAMES
    if host in WILDCARDS:  # every address of this machine: the names it goes by
        names += [socket.gethostname(), socket.getfqdn()]
    for name in names:
        if name not in WILDCARDS:
            guard.allow(f"http://{netloc(name, port)}")
    for url in [public_url, *allowed]:
        if url:
            guard.allow(url)
    return guard


def make_server(command: str, *, host: str, port: int, guard: Guard, public_url: str | None) -> Any:
    """textual-serve's Server with the guard in front of every route, our page and our icon."""
    from aiohttp import web
    from textual_serve.server import Server

    @web.middleware
    async def guarded(request: web.Request, handler: Any) -> web.StreamResponse:
        why = guard.refusal(request.path, request.headers, request.query, request.cookies)
        if why is not None:
            log.warning("refused %s %s from %s: %s", request.method, ascii(request.path[:200]),
                        request.remote, why)
            return web.Response(status=403, text=f"403 Forbidden: {why}.\n"
                                "Open the URL tunedeck-serve printed when it started (it holds the token).\n")
        response = await handler(request)
        given = request.query.get("token")
        if guard.token is not None and given is not None and request.path == "/":
            # the page's socket then carries the token without it in the socket URL
            response.set_cookie(guard.cookie, given, httponly=True, samesite="Strict", path="/")
        return response

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:  # textual-serve builds its routes here
            app = await super()._make_app()
            app.middlewares.append(guarded)
            app.router.add_get("/favicon.ico", lambda request: web.FileResponse(WEB_DIR / "favicon.ico"))
            return app

        def initialize_logging(self) -> None:
            super().initialize_logging()
            # aiohttp's access log would print the token of every page request; refusals are logged above
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

        async def on_startup(self, app: web.Application) -> None:
            pass  # main() prints the one URL to open

    return GuardedServer(command, host=host, port=port, title="tunedeck", public_url=public_url,
                         templates_path=WEB_DIR)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunedeck-serve", description=(
        "Serve tunedeck in a browser tab (one tunedeck per tab). Reach it through an SSH tunnel: "
        "ssh -L 8000:127.0.0.1:8000 gpu-box, then open the URL printed at start."))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=(
        f"the access token (16+ characters of A-Z a-z 0-9 . _ ~ -; default: ${TOKEN_ENV}, else a new random one)"))
    p.add_argument("--no-auth", action="store_true", help="no access token (loopback addresses only)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL", help=(
        "another address browsers use for this server, e.g. http://localhost:9000 when the tunnel "
        "forwards another local port (repeatable)"))
    p.add_argument("--public-url", help="the URL browsers use, when behind a proxy (allowed like --allow-origin)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="a tunedeck command that opens a screen "
                   "(default: the editor; e.g. `edit FILE`, `runs`, `attach RUN`)")
    return p


def prepare(options: argparse.Namespace) -> tuple[Guard, str, list[str]]:
    """The guard, the URL to open and the warnings to print; UsageError for refused combinations."""
    if not 0 < options.port < 65536:
        raise UsageError(f"--port {options.port}: allowed 1-65535")
    loopback = is_loopback(options.host)
    warnings = []
    if options.no_auth:
        if not loopback:
            raise UsageError(f"--no-auth is refused on {options.host}, which is not a loopback address: anyone who "
                             "can reach the port could drive tunedeck. Listen on 127.0.0.1 behind an SSH tunnel, "
                             "or drop --no-auth.")
        if options.token:
            raise UsageError("--no-auth and --token contradict each other: give one")
        token = None
        warnings.append("--no-auth: no access token; any local user or program can open this server")
    elif options.token:
        if not TOKEN_PATTERN.fullmatch(options.token):
            raise UsageError("--token: allowed 16 to 256 characters of A-Z a-z 0-9 . _ ~ -")
        token = options.token
    else:
        token = secrets.token_urlsafe(24)
    if not loopback:
        warnings.append(f"listening on {options.host}, not a loopback address: other machines can reach this "
                        "port; the access token is all that keeps them out. Prefer the default 127.0.0.1 "
                        "behind an SSH tunnel.")
    guard = build_guard(options.host, options.port, token, options.public_url, options.allow_origin)
    shown_host = options.host if options.host not in WILDCARDS else socket.gethostname()
    base = (options.public_url or f"http://{netloc(shown_host, options.port)}").rstrip("/")
    url = f"{base}/" + (f"?token={token}" if token else "")
    return guard, url, warnings


def check_listenable(host: str, port: int) -> None:
    """Bind and release the address first, so a taken port is reported before any URL is printed."""
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            probe.bind(address)


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        guard, url, warnings = prepare(options)
    except UsageError as error:
        print(f"tunedeck-serve: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        print("tunedeck-serve needs textual-serve: pip install 'tunedeck[serve]'", file=sys.stderr)
        return 1
    # textual-serve runs this string through a shell for each tab: every part is quoted, and the
    # screen is asked for explicitly (its stdin/stdout are pipes to the browser, not a terminal).
    command = f"{SCREEN_ENV}=1 exec " + shlex.join([sys.executable, "-m", "tui.cli", *options.args])
    server = make_server(command, host=options.host, port=options.port, guard=guard, public_url=options.public_url)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # refusals reach a log file (or a pipe) as they happen
    try:
        check_listenable(options.host, options.port)
    except OSError as error:  # the port is taken, or the address is not this machine's
        print(f"tunedeck-serve: error: cannot listen on {netloc(options.host, options.port)}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"tunedeck-serve: warning: {warning}", file=sys.stderr)
    what = shlex.join(["tunedeck", *options.args]) if options.args else "the tunedeck editor"
    print(f"Serving {what}. Open this URL in a browser (it holds the access token; keep it private):\n\n"
          f"    {url}\n\nPress Ctrl+C to stop (runs started from the browser keep running).", flush=True)
    try:
        server.serve()
    except OSError as error:  # the port is taken, or the address is not this machine's
        print(f"tunedeck-serve: error: cannot listen on {netloc(options.host, options.port)}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

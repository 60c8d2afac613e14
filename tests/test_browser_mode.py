"""Browser mode: `tunedeck-serve` (textual-serve) serves the page and streams the real editor to a browser socket."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, python_env

pytest.importorskip("textual_serve", reason="browser mode needs the serve extra: pip install 'tunedeck[serve]'")
aiohttp = pytest.importorskip("aiohttp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def fetch_page_and_screen(url: str, deadline: float) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session:
        while True:  # the server needs a moment to bind
            try:
                async with session.get(url + "/") as response:
                    status, page = response.status, await response.text()
                break
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        screen = b""
        async with session.ws_connect(url + "/ws?width=120&height=36") as ws:  # what the page's JS opens
            while time.monotonic() < deadline and not (b"demo" in screen and b"Batch" in screen):
                try:
                    message = await ws.receive(timeout=2)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.BINARY:
                    screen += message.data
                elif message.type == aiohttp.WSMsgType.TEXT:
                    screen += message.data.encode()
                else:
                    break
        return status, page, screen


def test_serve_shows_the_editor_in_a_browser_socket(tmp_path) -> None:
    port = free_port()
    env = python_env()
    env.update(TUNEDECK_CONFIG_DIR=str(tmp_path / "config"), TUNEDECK_STATE_DIR=str(tmp_path / "state"))
    server = subprocess.Popen([sys.executable, "-m", "tui.serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        status, page, screen = asyncio.run(fetch_page_and_screen(f"http://127.0.0.1:{port}", time.monotonic() + 60))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the app it started for our socket
        server.wait(timeout=20)
    assert status == 200
    assert "tunedeck" in page and f"ws://127.0.0.1:{port}/ws" in page
    # The editor itself ran behind the socket: its preset name and a field group were drawn.
    assert b"demo" in screen and b"Batch" in screen, screen[-500:]


def test_serve_without_textual_serve_says_how_to_install() -> None:
    code = ("import sys; sys.modules['textual_serve'] = None; sys.modules['textual_serve.server'] = None\n"
            "from tui.serve import main; sys.exit(main(['--port', '1']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=python_env(), capture_output=True, text=True)
    assert done.returncode == 1 and "pip install 'tunedeck[serve]'" in done.stderr

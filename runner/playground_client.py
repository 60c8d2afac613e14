"""Talking to the playground subprocess (`python -m runner.playground`) without importing torch.

Used by `tunedeck try` and the TUI's Try screen: start it for a run, send requests, read its replies
(a thread turns stdout lines into dicts on a queue), close it. Closing always ends the process:
a polite "quit", then SIGTERM, then SIGKILL, each after a short wait, addressed by its own pid.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

PLAYGROUND_MODULE = "runner.playground"


class PlaygroundClient:
    def __init__(self, run_dir: str | os.PathLike[str], checkpoint: str = "latest", *,
                 max_memory: int | None = None, env: dict[str, str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.max_memory = max_memory
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._write_lock = threading.Lock()
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", PLAYGROUND_MODULE, str(self.run_dir), "--checkpoint", self.checkpoint]
        if self.max_memory is not None:
            argv += ["--max-memory", str(self.max_memory)]
        return argv

    def start(self) -> "PlaygroundClient":
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
                                     env=self.env)
        threading.Thread(target=self._read_stdout, name="playground replies", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="playground stderr", daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                self.stderr_tail.append(line.rstrip("\n"))  # a stray print: keep it with the diagnostics
                continue
            if isinstance(reply, dict):
                self.replies.put(reply)
        code = self.proc.wait()
        self.replies.put({"type": "exit", "code": code, "stderr_tail": "\n".join(self.stderr_tail)})

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    # --- requests ------------------------------------------------------------------------------------
    def send(self, request: dict[str, Any]) -> bool:
        """Write one request; False when the playground is gone."""
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            return False
        try:
            with self._write_lock:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def generate(self, prompt: str, *, model: str = "tuned", generation: dict[str, Any] | None = None,
                 request_id: str | None = None) -> str:
        if request_id is None:
            self._next_id += 1
            request_id = str(self._next_id)
        self.send({"type": "generate", "id": request_id, "prompt": prompt, "model": model,
                   "generation": generation or {}})
        return request_id

    def cancel(self) -> None:
        self.send({"type": "cancel"})

    def next_reply(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return None

    # --- ending ----------------------------------------------------------------------------------------
    def close(self, wait: float = 3.0) -> int | None:
        """End the playground (quit, then SIGTERM, then SIGKILL) and return its exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.send({"type": "quit"})
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        for step in (proc.terminate, proc.kill):
            try:
                return proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                step()
        return proc.wait(timeout=wait)

    def __enter__(self) -> "PlaygroundClient":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

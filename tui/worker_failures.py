"""The one place a worker's failure reaches the user.

Every thread worker in the app is started with `exit_on_error=False`, so an exception in it does not
tear the app down; instead Textual posts `Worker.StateChanged(ERROR)` to the node that started it.
That message does not bubble, so each screen (and the app) mixes in `ShowsWorkerFailures`, whose
single handler logs the traceback and shows a notification naming the worker. Screens that need to
react to their own workers finishing define their own `on_worker_state_changed` as well; Textual
calls both (handlers are collected along the MRO).
"""

from __future__ import annotations

from textual.worker import Worker, WorkerState

from .markup import safe


def failure_text(worker: Worker) -> str:
    """What a failed worker is called and what went wrong, in one escaped line."""
    error = worker.error
    what = worker.name or worker.group or "background task"
    detail = f"{type(error).__name__}: {error}" if error is not None else "it stopped with an error"
    return f"{safe(what)} failed: {safe(detail)}"


def show_worker_failure(node, worker: Worker) -> None:
    """Log the failure with its traceback and tell the user, from the UI thread."""
    node.log.error(f"worker {worker.name!r} failed", worker.error)
    node.app.notify(failure_text(worker), title="Something went wrong", severity="error", timeout=12)


class ShowsWorkerFailures:
    """Mixin: show every failed worker of this node (a screen or the app) to the user."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            show_worker_failure(self, event.worker)

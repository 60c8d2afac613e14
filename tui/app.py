"""tunedeck's Textual app: opens a preset in the editor screen and owns the app-wide flows.

App-wide flows are the ones that cross screens: asking before unsaved edits are lost (quit,
open), offering an autosaved draft, the command palette, and handing a valid config to launch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.message import Message
from textual.screen import Screen

from .markup import safe
from .run_ops import EndAnnouncer
from .screens.confirm import ConfirmScreen
from .screens.editor import EditorScreen
from .worker_failures import ShowsWorkerFailures

if TYPE_CHECKING:  # runner's schema side loads after the first frame (see tui.screens.editor)
    from runner import presets

    from . import drafts
    from .state import EditorState

DEFAULT_PRESET = "demo"  # what `tunedeck` opens without arguments (shipped, trains on CPU)

UNSAVED_CHOICES = [("save", "Save", "s"), ("discard", "Discard", "d"), ("cancel", "Cancel", "c")]


def state_from(loaded: presets.Loaded) -> EditorState:
    """An editor document for a successfully loaded preset."""
    from .state import EditorState

    return EditorState.from_loaded(loaded)


@dataclass
class ExportWritten(Message):
    """The export worker's outcome: the file written, or why not (a config or file-system problem)."""

    path: Path
    fmt: str
    error: str | None = None


class TunedeckApp(ShowsWorkerFailures, App):
    CSS_PATH = ["styles/editor.tcss", "styles/widgets.tcss", "styles/dialogs.tcss", "styles/monitor.tcss",
                "styles/try.tcss"]
    BINDINGS = [("f9", "runs", "Runs")]  # F6-F8 apply the memory gauge suggestions in the editor
    TITLE = "tunedeck"
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, state: EditorState | None = None, *, source: str = DEFAULT_PRESET,
                 probe: Callable[[], Any] | None = None, any_draft: bool = False,
                 runs_dir: str | Path | None = None, open_runs: bool = False, attach: Any = None) -> None:
        """Edit `state`, or the preset `source`, loaded just after the first frame. `probe` replaces
        the GPU probe (tests pass a fixed report); `any_draft` offers the newest draft of any
        preset, not only of this one (used when started without a file)."""
        super().__init__()
        self.state = state
        self.source = source
        self.probe = probe
        self.any_draft = any_draft
        self.runs_dir = runs_dir  # where the runs screen looks (None: runner.registry's default)
        self.open_runs = open_runs or attach is not None  # start on the runs screen (`tunedeck runs`)
        self.attach = attach  # a RunDir to open straight into its monitor (`tunedeck attach RUN`)
        self.runs_is_home = self.open_runs  # Esc on the runs screen quits, until the editor is first shown
        self._drafts_offered = False  # a kept draft is offered once, when the editor first has its preset
        self.run_ends = EndAnnouncer()  # a run's end rings once, whichever screen sees it first

    def get_default_screen(self) -> Screen:
        return EditorScreen(self.state, self.source, load_when_shown=self.open_runs)

    @property
    def editor(self) -> EditorScreen:
        return next(s for s in self.screen_stack if isinstance(s, EditorScreen))

    def on_mount(self) -> None:
        if self.open_runs:
            self.action_runs()
            if self.attach is not None:
                self.open_monitor(self.attach)

    def on_app_focus(self) -> None:
        """Textual's web driver (tunedeck-serve) starts an app blurred, so its first screen got no
        auto focus and keys went nowhere until a click: focus what the screen would have focused."""
        screen = self.screen
        selector = screen.AUTO_FOCUS if screen.AUTO_FOCUS is not None else self.AUTO_FOCUS
        if screen.focused is None and selector:
            first = next((w for w in screen.query(selector) if w.focusable), None)
            if first is not None:
                first.focus(scroll_visible=False)

    def editor_ready(self, editor: EditorScreen) -> None:
        """The editor has its preset: offer a kept draft (once, and not when started on the runs)."""
        self.runs_is_home = False  # the editor is open now: Esc on the runs screen goes back to it
        if self.open_runs or self._drafts_offered:
            return
        self._drafts_offered = True
        from . import drafts

        draft = drafts.find_draft(editor.state.source)
        if draft is None and self.any_draft:
            draft = drafts.latest_draft()
        if draft is not None and draft.config != editor.state.config:
            self.offer_draft(draft)

    # --- drafts ------------------------------------------------------------------------------------------
    def offer_draft(self, draft: drafts.Draft) -> None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(draft.saved_at))
        message = (f"Unsaved edits to [b]{safe(draft.name)}[/b] from {when} were kept.\n"
                   "Restore them?")

        async def answered(answer: str | None) -> None:
            if answer == "restore":
                await self.restore_draft(draft)
            elif answer == "discard":
                draft.file.unlink(missing_ok=True)

        self.push_screen(ConfirmScreen("Restore draft", message,
                                       [("restore", "Restore", "r"), ("discard", "Discard", "d"),
                                        ("cancel", "Not now", "n")]), answered)

    async def restore_draft(self, draft: drafts.Draft) -> None:
        from runner import presets

        from .state import EditorState

        state = self.editor.state
        if draft.source != state.source:
            loaded = presets.load(draft.source)
            if loaded.config is not None and loaded.path is not None:
                state = state_from(loaded)
            else:  # the file went away: keep the edits, with nothing to compare them with
                state = EditorState(draft.config, draft.config, draft.source, draft.name, path=draft.path)
        state.config = draft.config
        await self.editor.replace_state(state)
        from . import drafts

        drafts.adopt(draft)  # these edits are open here now: no other session is offered them
        self.notify(f"Restored unsaved edits to {safe(draft.name)}.")

    # --- unsaved edits -------------------------------------------------------------------------------------
    def ask_unsaved(self, then: Callable[[], Any]) -> None:
        """Run `then` now when nothing is unsaved; otherwise ask Save / Discard / Cancel first."""
        editor = self.editor
        if editor.state is None or not editor.state.dirty:
            then()
            return

        def answered(answer: str | None) -> None:
            if answer == "discard":
                from . import drafts

                drafts.delete_draft(editor.state.source)
                then()
            elif answer == "save":
                editor.save_then(then)

        self.push_screen(ConfirmScreen("Unsaved edits", f"{safe(editor.state.name)} has unsaved edits.",
                                       UNSAVED_CHOICES), answered)

    async def action_quit(self) -> None:
        self.ask_unsaved(self.exit)

    def open_preset(self) -> None:
        self.ask_unsaved(self._pick_preset)

    def _pick_preset(self) -> None:
        from .screens.open_preset import OpenScreen

        async def chosen(source: str | None) -> None:
            if source:
                await self.open_source(source)

        self.push_screen(OpenScreen(self.editor.summarise), chosen)

    async def open_source(self, source: str) -> bool:
        from runner import presets

        from . import drafts

        loaded = presets.load(source)
        if loaded.config is None:
            from .screens.problems_screen import ProblemsScreen

            self.push_screen(ProblemsScreen(f"Cannot open {source}", loaded.problems))
            return False
        state = state_from(loaded)
        await self.editor.replace_state(state)
        from .recent import remember

        if not state.shipped and state.path is not None:
            remember(state.path)
        draft = drafts.find_draft(state.source)
        if draft is not None and draft.config != state.config:
            self.offer_draft(draft)
        return True

    # --- launch --------------------------------------------------------------------------------------------
    def launch(self, state: EditorState) -> None:
        """Hand a valid config to the launch dialog; once started, watch it in the monitor."""
        from .screens.launch_dialog import LaunchDialog

        def started(run: Any) -> None:
            if run is not None:
                self.open_monitor(run)

        self.push_screen(LaunchDialog(state.config, state.name, probe=self.probe, runs_dir=self.runs_dir), started)

    # --- runs ----------------------------------------------------------------------------------------------
    def action_runs(self) -> None:
        from .screens.runs import RunsScreen

        if not isinstance(self.screen, RunsScreen):
            self.push_screen(RunsScreen(self.runs_dir, monitor_options={"probe": self.probe}))

    def open_monitor(self, run: Any) -> None:
        from .screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen(run, probe=self.probe))

    # --- export (runner.export) ----------------------------------------------------------------------------
    def export_config(self, editor: EditorScreen, fmt: str) -> None:
        """Ask for a path (Save-as dialog), then write the export in a thread: the script may build the demo model."""
        from runner.export import DESCRIPTIONS, SUFFIXES

        from .screens.save_as import SaveAsScreen

        if editor.refuse_if_invalid("export"):
            return
        config, name = editor.state.config, editor.state.name

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.write_export(config, name, fmt, path)

        self.push_screen(SaveAsScreen(f"Export {DESCRIPTIONS[fmt]}", f"./{name}{SUFFIXES[fmt]}"), chosen)

    @work(thread=True, exit_on_error=False, group="export", name="export")
    def write_export(self, config: Any, name: str, fmt: str, path: Path) -> None:
        from runner.atomic import atomic_write_text
        from runner.export import export_text
        from runner.problems import ConfigError

        try:
            atomic_write_text(path, export_text(config, fmt, name=name))
        except (OSError, ConfigError) as exc:  # expected: a config the format cannot express, an unwritable path
            self.post_message(ExportWritten(path, fmt, str(exc)))
            return
        self.post_message(ExportWritten(path, fmt))

    def on_export_written(self, message: ExportWritten) -> None:
        if message.error is not None:
            self.notify(f"Could not export to {safe(message.path)}: {safe(message.error)}", title="Not exported",
                        severity="error")
        else:
            self.notify(safe(message.path), title=f"Exported ({message.fmt})")

    # --- command palette -----------------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        editor = screen if isinstance(screen, EditorScreen) and screen.state is not None else None
        if editor is not None:
            from . import drafts

            yield SystemCommand("Open preset", "Pick a shipped, user or recent preset (ctrl+o)", editor.action_open)
            yield SystemCommand("Save", "Save the preset, keeping its comments (ctrl+s)", editor.action_save)
            yield SystemCommand("Save as", "Save under a new name or path (F2)", editor.action_save_as)
            yield SystemCommand("Export TOML", "Write the config to another file, keep editing this one",
                                lambda: editor.action_save_as(export=True))
            from runner.export import DESCRIPTIONS

            for fmt, description in DESCRIPTIONS.items():
                yield SystemCommand(f"Export {fmt}", f"Write {description}; `tunedeck import` reads it back",
                                    lambda fmt=fmt: self.export_config(editor, fmt))
            yield SystemCommand("Launch", "Start training with this config (F5)", editor.action_launch)
            yield SystemCommand("Data", "Preview the training data token by token: counts, lengths, what is trained (F10)",
                                editor.action_data)
            yield SystemCommand("Changes", "What differs from the preset and the defaults (F3)", editor.action_changes)
            yield SystemCommand("Toggle help panel", "Show or hide the field help (F4)", editor.action_toggle_help)
            yield SystemCommand("Full help", "The focused field's full explanation (F1)", editor.action_full_help)
            yield SystemCommand("Runs", "Every run: open its monitor, compare two (F9)", self.action_runs)
            yield SystemCommand("Discard draft", "Delete the autosaved draft of this preset",
                                lambda: drafts.delete_draft(editor.state.source))
        yield from super().get_system_commands(screen)


def run_editor(state: EditorState | None = None, any_draft: bool = False, source: str = DEFAULT_PRESET) -> int:
    """Run the editor on `state`, or on the preset `source` loaded after the first frame.

    Returns the exit code: 2 when the preset could not be read (the app prints why)."""
    app = TunedeckApp(state, source=source, any_draft=any_draft)
    app.run()
    return app.return_code or 0

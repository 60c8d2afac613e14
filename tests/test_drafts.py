"""Drafts belong to one session: a tunedeck that is still open (another terminal, another browser tab
of tunedeck-serve) keeps its edits to itself; once it has ended, the next session is offered them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from runner import presets
from tui import drafts
from tui.app import TunedeckApp
from tui.screens.confirm import ConfirmScreen

from conftest import ROOT, python_env, settle_editor

DEMO = str((ROOT / "presets" / "demo.toml").resolve())


def demo_with_seed(seed: int):
    config = presets.load("demo").config
    return config.model_copy(update={"training": config.training.model_copy(update={"seed": seed})})


class OtherSession:
    """Another tunedeck process that wrote a draft of the demo and stays open until closed."""

    def __init__(self, seed: int) -> None:
        code = textwrap.dedent(f"""
            import sys
            from runner import presets
            from tui import drafts
            config = presets.load("demo").config
            config = config.model_copy(update={{"training": config.training.model_copy(update={{"seed": {seed}}})}})
            print(drafts.write_draft({DEMO!r}, "demo", None, config), flush=True)
            sys.stdin.read()  # open until the test closes our stdin
        """)
        self.process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=python_env(), text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.file = Path(self.process.stdout.readline().strip())
        assert self.file.is_file()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def test_another_open_sessions_draft_is_not_offered_until_it_ends() -> None:
    other = OtherSession(seed=7)
    try:
        assert drafts.find_draft(DEMO) is None and drafts.latest_draft() is None
        drafts.delete_draft(DEMO)  # saving or discarding here must not throw away the other's edits
        assert other.file.is_file()
    finally:
        other.close()
    draft = drafts.find_draft(DEMO)
    assert draft is not None and draft.config.training.seed == 7 and draft.file == other.file
    assert drafts.latest_draft() == draft


def test_own_drafts_are_offered_and_two_sessions_never_share_a_file() -> None:
    other = OtherSession(seed=7)
    try:
        mine = drafts.write_draft(DEMO, "demo", None, demo_with_seed(9))
        assert mine != other.file and other.file.is_file()  # no session overwrites another's draft
        assert drafts.find_draft(DEMO).config.training.seed == 9
        drafts.delete_draft(DEMO)
        assert not mine.exists() and other.file.is_file()
    finally:
        other.close()


def test_a_reused_pid_does_not_keep_a_dead_sessions_draft_hidden() -> None:
    file = drafts.write_draft(DEMO, "demo", None, demo_with_seed(5))
    payload = json.loads(file.read_text())
    payload["session"] = {"pid": os.getpid(), "started": payload["session"]["started"] - 3600}  # same pid, older process
    file.write_text(json.dumps(payload))
    draft = drafts.find_draft(DEMO)
    assert draft is not None and draft.session.has_ended()


def test_drafts_written_before_sessions_existed_are_still_offered_and_deleted() -> None:
    old = drafts.drafts_dir() / (drafts.draft_file(DEMO).name.split(".")[0] + ".json")  # version 1: one per source
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text(json.dumps({"version": 1, "source": DEMO, "name": "demo", "path": None, "saved_at": 1.0,
                               "config": demo_with_seed(3).model_dump(mode="json")}))
    assert drafts.find_draft(DEMO).config.training.seed == 3
    drafts.delete_draft(DEMO)
    assert not old.exists()


async def test_the_app_offers_only_an_ended_sessions_draft_and_restoring_makes_it_its_own() -> None:
    other = OtherSession(seed=11)
    try:
        app = TunedeckApp(source="demo", any_draft=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle_editor(pilot)
            assert not isinstance(app.screen, ConfirmScreen)  # the other tunedeck is still open
    finally:
        other.close()
    app = TunedeckApp(source="demo", any_draft=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_editor(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("r")
        await pilot.pause()
        assert app.editor.state.config.training.seed == 11
        # restored here: the file is now this session's, so a third tunedeck opened now is not offered it
        assert not other.file.exists()
        own = drafts.find_draft(DEMO)
        assert own is not None and own.session == drafts.this_session() and own.config.training.seed == 11

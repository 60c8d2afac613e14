"""On a login node without a GPU, a GPU preset is edited, saved and exported; the problems list says
what this machine lacks ("on this machine"), and only launching it here is refused. The launch
dialog offers SLURM instead, with the exact sbatch command and script. (The probe reports no GPU,
as on this test machine; everything else is real.)"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, RadioButton, Static

from fixtures.monitor_app import wait_for
from runner import presets
from tui.app import TunedeckApp, state_from
from tui.screens.launch_dialog import LaunchDialog
from tui.screens.problems_screen import ProblemsScreen
from tui.screens.save_as import SaveAsScreen
from tui.services import NoProbe
from tui.widgets.problems_list import ProblemsList

from tests.conftest import settle_editor as settle

SIZE = (120, 48)


def make_app(source: str = "qlora-8b", **kwargs) -> TunedeckApp:
    return TunedeckApp(state_from(presets.load(source)), probe=lambda: NoProbe(reason="no NVIDIA driver found",
                                                                               driver=""), **kwargs)


async def _type_path(pilot, path: Path) -> None:
    """The save-as dialog is up: type `path`, Enter, and wait for the dialog to close and the file."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SaveAsScreen) and pilot.app.screen.query("#save-as-name"),
                   what="the save-as dialog")
    pilot.app.screen.query_one("#save-as-name", Input).value = str(path)
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, SaveAsScreen) and path.is_file(),
                   what=f"{path.name} written")
    await pilot.app.workers.wait_for_complete()


async def _save_as(pilot, key: str, path: Path) -> None:
    await pilot.press(key)
    await _type_path(pilot, path)


async def test_gpu_preset_is_saved_and_exported_with_notes_on_this_machine(tmp_path: Path) -> None:
    app = make_app()
    saved, exported = tmp_path / "my-qlora.toml", tmp_path / "job.sh"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = str(app.editor.query_one(ProblemsList).render())
        assert "on this machine" in shown and "fp16" in shown
        assert app.editor.blocking_problems() == []
        await _save_as(pilot, "f2", saved)  # F2: save as; not refused
        assert not isinstance(app.screen, ProblemsScreen)
        app.export_config(app.editor, "accelerate-cmd")
        await _type_path(pilot, exported)
    text = saved.read_text()
    assert presets.load(saved).ok and presets.load(saved).config.quantization.load_in_4bit
    assert "num_hidden_layers" not in text and "hidden_size" not in text  # a pretrained model's shape is its own
    command = exported.read_text()
    assert "--cpu" not in command and "--mixed_precision fp16" in command  # the target's GPUs, not this machine


async def test_launch_dialog_refuses_here_and_offers_slurm_with_the_exact_job(tmp_path: Path) -> None:
    app = make_app(runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchDialog), what="the launch dialog")
        dialog = app.screen
        await app.workers.wait_for_complete()

        def problems() -> str:
            return str(dialog.query_one("#launch-problems", Static).render())

        await wait_for(pilot, lambda: "Launch refused" in problems(), what="the refusal")
        go = dialog.query_one("#launch-go", Button)
        assert go.disabled  # here: this machine has no GPU
        assert "Launch refused" in str(dialog.query_one("#launch-problems", Static).render())

        await pilot.click("#where-slurm")
        await wait_for(pilot, lambda: dialog.where == "slurm", what="SLURM chosen")
        assert dialog.query_one("#where-slurm", RadioButton).value and dialog.where == "slurm"
        dialog.query_one("#slurm-nodes", Input).value = "2"
        dialog.query_one("#slurm-time", Input).value = "01:00:00"
        await wait_for(pilot, lambda: dialog.slurm_plan is not None and "#SBATCH --time=01:00:00" in dialog.slurm_plan[2]
                       and "#SBATCH --nodes=2" in dialog.slurm_plan[2], what="the job script for 2 nodes, 1 hour")
        shown = str(dialog.query_one("#launch-command", Static).render())
        run_dir, argv, script = dialog.slurm_plan
        assert argv == ["sbatch", "--parsable", str(run_dir / "job.sbatch")] and "sbatch --parsable" in shown
        assert "#SBATCH --nodes=2" in script and "#SBATCH --time=01:00:00" in script and "--gres=gpu:1" in script
        assert "#SBATCH --nodes=2" in shown and str(run_dir) in shown
        import shutil

        assert go.disabled == (shutil.which("sbatch") is None)  # this machine's GPU no longer matters
        dialog.query_one("#slurm-time", Input).value = "soon"
        await wait_for(pilot, lambda: "not a SLURM time" in problems(), what="the bad time refused")
        assert go.disabled

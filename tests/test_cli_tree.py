"""One command tree (runner.cli's parser, with the TUI commands added by tui/cli.py), one error handler,
and the small things a new user meets first: validate's order, show's hidden fields, stop's first word."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, python_env
from runner import exits, presets
from runner.atomic import is_our_temp, temp_prefix
from tui import cli


def sh(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True,
                          env=env or python_env(), cwd=cwd, timeout=60)


def test_help_lists_every_command_including_the_tui_ones_and_the_exit_codes() -> None:
    done = sh("--help")
    assert done.returncode == 0
    commands = set(re.findall(r"^    (\w+)  ", done.stdout, re.M))
    assert {"edit", "attach", "runs", "validate", "show", "estimate", "export", "run", "stop"} <= commands
    assert "Exit codes: 0 success" in " ".join(done.stdout.split())


def readme_command_rows() -> list[tuple[str, str]]:
    """(command cell, `tunedeck --help says` cell) of each row of README's command table, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Command line"):]
    section = section[:section.index("\n## ", 1)]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `tunedeck"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append((cells[0].strip("`"), cells[1]))
    return rows


def test_readme_command_table_matches_help() -> None:
    """Every command `tunedeck --help` lists has one row, in the same order, with the same one-line help; every
    option a row names is one the command takes."""
    from runner.cli import build_parser

    parser = build_parser(extra=(cli.register,))
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    rows = readme_command_rows()
    assert rows[0] == ("tunedeck", "opens the editor on the demo preset")  # no command: the editor
    named = [(command.split()[1], says) for command, says in rows[1:]]
    assert [name for name, _ in named] == list(helps)  # every command, once, in --help's order
    for name, says in named:
        assert says == helps[name], name
    for command, _ in rows[1:]:
        name = command.split()[1]
        options = {option for action in sub.choices[name]._actions for option in action.option_strings}
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", command):
            assert option in options, (name, option)
    # and what --help prints is that same tree
    done = sh("--help")
    listed = re.findall(r"^    (\w+)  ", done.stdout, re.M)
    assert listed == list(helps)


def test_the_tui_commands_have_their_own_help() -> None:
    for command, says in (("edit", "Open a preset in the editor"), ("attach", "live monitor"), ("runs", "--screen")):
        done = sh(command, "--help")
        assert done.returncode == 0 and says in done.stdout, (command, done.stdout)


def test_piped_runs_prints_the_table_and_json(tmp_path: Path) -> None:
    table = sh("runs", "--runs-dir", str(tmp_path))
    assert table.returncode == 0 and "no runs in" in table.stdout
    listed = sh("runs", "--json", "--runs-dir", str(tmp_path))
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_runs_screen_can_be_forced_without_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook browser mode needs: `runs --screen` (or TUNEDECK_RUNS_SCREEN=1) opens the screen over pipes."""
    opened: list[object] = []
    monkeypatch.setattr(cli, "open_runs", lambda runs_dir, attach=None: opened.append(runs_dir) or 0)
    assert cli.main(["runs", "--screen", "--runs-dir", str(tmp_path)]) == 0
    monkeypatch.setenv(cli.RUNS_SCREEN_ENV, "1")
    assert cli.main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert opened == [str(tmp_path), str(tmp_path)]
    assert cli.main(["runs", "--json", "--runs-dir", str(tmp_path)]) == 0 and len(opened) == 2  # --json: the table
    monkeypatch.delenv(cli.RUNS_SCREEN_ENV)
    monkeypatch.setenv(cli.SCREEN_ENV, "1")  # what tunedeck-serve sets
    assert cli.main(["runs", "--runs-dir", str(tmp_path)]) == 0 and len(opened) == 3


def test_tui_commands_go_through_the_one_error_handler(tmp_path: Path, monkeypatch, capfd) -> None:
    import tui.app

    def broken(*args, **kwargs):
        raise RuntimeError("the editor fell over")

    monkeypatch.setattr(tui.app, "run_editor", broken)
    assert cli.main(["edit", "demo"]) == exits.BUG
    err = capfd.readouterr().err
    assert "bug in tunedeck" in err and "Traceback" not in err
    assert list((tmp_path / "state" / "errors").glob("tunedeck-*.txt"))


def test_attach_to_a_missing_run_is_a_usage_error(tmp_path: Path, capfd) -> None:
    assert cli.main(["attach", "nothing-here", "--runs-dir", str(tmp_path)]) == exits.USAGE
    assert "nothing-here" in capfd.readouterr().err


def test_no_arguments_opens_the_editor_without_building_the_command_tree() -> None:
    code = ("import sys, tui.cli, tui.app\n"
            "tui.app.run_editor = lambda **kw: print('editor', kw.get('source')) or 0\n"
            "tui.cli.main([])\n"
            "print(sorted(m for m in ('runner.cli', 'runner.commands.config_cmds', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), cwd=ROOT,
                         check=True, timeout=60)
    assert out.stdout.splitlines() == ["editor demo", "[]"]


def test_cli_commands_do_not_load_the_terminal_ui() -> None:
    code = ("import sys\nfrom tui import cli\ncli.main(['presets'])\ncli.main(['--help'])\n"
            "print(sorted(m for m in ('textual', 'tui.app', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), cwd=ROOT,
                         timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_validate_lists_problems_in_line_order_with_cross_field_ones_in_the_same_pass(tmp_path: Path) -> None:
    preset = tmp_path / "mixed.toml"
    preset.write_text("[training]\n"
                      "seed = -1\n"              # line 2: a bad value
                      "bf16 = true\n"
                      "fp16 = true\n"            # line 4: cross-field
                      "learnig_rate = 1e-4\n"    # line 5: unknown key
                      "[lora]\n"
                      "r = 0\n")                 # line 7: a bad value
    done = sh("validate", str(preset), cwd=tmp_path)
    assert done.returncode == exits.FAILED
    lines = [int(m) for m in re.findall(r"mixed\.toml:(\d+):", done.stderr)]
    assert lines == [2, 4, 5, 7], done.stderr
    assert "training.fp16: fp16 and bf16 are both on" in done.stderr


def test_show_hides_fields_that_do_not_apply(tmp_path: Path, capfd) -> None:
    assert cli.main(["show", "demo"]) == 0
    out = capfd.readouterr().out
    assert "\nnum_hidden_layers " not in out and "apply only when model.from_scratch is true" in out
    assert cli.main(["show", "demo", "--all"]) == 0
    assert "\nnum_hidden_layers " in capfd.readouterr().out
    scratch = tmp_path / "scratch.toml"
    scratch.write_text('extends = "demo"\n[model]\nfrom_scratch = true\nname_or_path = ""\n')
    assert cli.main(["show", str(scratch)]) == 0
    assert "\nnum_hidden_layers " in capfd.readouterr().out


def test_stop_of_a_run_that_is_not_running_says_so_first(tmp_path: Path, capfd) -> None:
    run = tmp_path / "finished-run"
    run.mkdir()
    (run / "config.toml").write_text("")
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    assert cli.main(["stop", str(run)]) == exits.OK
    first = capfd.readouterr().out.splitlines()[0]
    assert first == "finished-run is not running (state: finished)"


def test_a_save_removes_temp_files_that_killed_saves_left(tmp_path: Path) -> None:
    """Writers killed with SIGKILL while holding their temp file; a live writer's temp file is kept."""
    target = tmp_path / "mine.toml"
    presets.save(presets.require_config("demo"), target)
    holder = ("import sys, time\nfrom pathlib import Path\nfrom runner.atomic import _locked_temp\n"
              "fd, name = _locked_temp(Path(sys.argv[1]))\nprint(name, flush=True)\ntime.sleep(600)\n")
    children, temps = [], []
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", holder, str(target)], stdout=subprocess.PIPE, text=True,
                                 env=python_env())
        temps.append(Path(child.stdout.readline().strip()))
        children.append(child)
    try:
        for child in children[:2]:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        unrelated = tmp_path / f"{temp_prefix(target)}notours.tmp"
        unrelated.write_text("keep me")
        other_file = tmp_path / ".other.toml.abcdefgh.tmp"
        other_file.write_text("keep me")
        assert all(t.exists() and is_our_temp(target, t.name) for t in temps)
        presets.save(presets.require_config("demo"), target)
        assert [t.exists() for t in temps] == [False, False, True]  # the live writer's stays
        assert unrelated.exists() and other_file.exists()
        assert presets.load(target).ok
    finally:
        for child in children:
            child.kill()
            child.wait(timeout=30)


def shown_keys(out: str) -> set[str]:
    """section.key of every field `show` printed."""
    keys, section = set(), ""
    for line in out.splitlines():
        if re.fullmatch(r"\[\w+\]", line):
            section = line.strip("[]")
        elif section != "derived" and (match := re.match(r"(\w+)\s+= ", line)):
            keys.add(f"{section}.{match.group(1)}")
    return keys


def test_show_leaves_out_exactly_the_fields_the_schema_says_do_not_apply(tmp_path: Path, capfd) -> None:
    from runner.schema import FIELDS, applies

    chat = tmp_path / "chat.toml"
    chat.write_text('extends = "demo"\n[data]\nformat = "chat"\n[generation]\ndo_sample = true\n'
                    "[training]\nmax_steps = 50\n[launch]\nnum_machines = 2\nmain_process_ip = \"10.0.0.1\"\n")
    for source in ("demo", str(chat)):
        config = presets.require_config(source)
        assert cli.main(["show", source]) == 0
        out = capfd.readouterr().out
        assert shown_keys(out) == {spec.key for spec in FIELDS if applies(spec, config)}, source
        hidden = [spec for spec in FIELDS if not applies(spec, config)]
        assert f"# not shown: {len(hidden)} field(s) that do not apply to this config (--all shows them):" in out
        assert cli.main(["show", source, "--all"]) == 0
        assert shown_keys(capfd.readouterr().out) == {spec.key for spec in FIELDS}
        assert cli.main(["show", source, "--json"]) == 0
        assert json.loads(capfd.readouterr().out)["not_applicable"] == [spec.key for spec in hidden]
    demo_out = (cli.main(["show", "demo"]), capfd.readouterr().out)[1]
    assert "\ntemperature " not in demo_out and "only when generation.do_sample is true" in demo_out  # greedy demo
    assert "\ninstruction_field " in demo_out and "\nmessages_field " not in demo_out  # instruction data
    assert "\nnum_train_epochs " in demo_out and "\neval_steps " in demo_out
    chat_out = (cli.main(["show", str(chat)]), capfd.readouterr().out)[1]
    assert "\ntemperature " in chat_out and "\nmessages_field " in chat_out and "\ninstruction_field " not in chat_out
    assert "\nnum_train_epochs " not in chat_out and "only when training.max_steps is not above 0" in chat_out
    assert "\nmain_process_ip " in chat_out


def test_show_has_no_list_of_fields_of_its_own() -> None:
    """Which fields apply is each field's `applies` in the schema; the command names no field key itself."""
    import ast

    from runner.schema import FIELDS_BY_KEY

    source = (ROOT / "runner" / "commands" / "config_cmds.py").read_text()
    constants = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)
                 and isinstance(node.value, str)}
    assert not [c for c in constants if c.lstrip("!").split("=")[0] in FIELDS_BY_KEY]

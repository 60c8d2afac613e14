"""Hostile and broken presets (tests/hostile/*.toml) through every command that reads a preset.

Each file says in its first line what must be reported: `# expect key=KEY line=LINE text=TEXT` (KEY as
printed, with control characters escaped; `-` when the problem is the file's, not a key's). Every file
goes through `validate`, `show`, `estimate`, `export` and `run --detach`, through the real console
script's argument parsing and error handling; a handful also as real subprocesses. Each must exit
with its documented code, name the file, the line and the key, and print no raw control character,
no traceback and no "internal error". A subprocess timeout (not a timing assertion) guards "never hangs".
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, python_env
from runner import exits
from tui import cli

CORPUS_DIR = Path(__file__).parent / "hostile"
CORPUS = sorted(CORPUS_DIR.glob("*.toml"))
TIME_LIMIT_S = 10
# command -> (extra arguments, exit code for a preset with errors)
COMMANDS = {
    "validate": ([], exits.FAILED),
    "show": ([], exits.USAGE),
    "estimate": (["--gpu-memory", "24GiB"], exits.USAGE),
    "export": (["--to", "accelerate-cmd"], exits.USAGE),
    "run": (["--detach"], exits.USAGE),
}
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
EXPECT = re.compile(r"# expect key=(?P<key>\S+) line=(?P<line>\d+|-) text=(?P<text>.+?)\s*$")
LONGEST_LINE = 2000  # long values are shortened when echoed; no line comes near this


def _header(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    return data.decode("utf-8-sig", "replace")


def expectation(path: Path) -> dict[str, str | None]:
    text = _header(path)
    match = EXPECT.match(text.splitlines()[0])
    assert match, f"{path.name}: the first line must say what is expected"
    absent = re.search(r"^# expect-absent (.+?)\s*$", text, re.M)
    return {"key": None if match["key"] == "-" else match["key"],
            "line": None if match["line"] == "-" else match["line"],
            "text": match["text"], "absent": absent.group(1) if absent else None}


def check_output(path: Path, command: str, code: int, output: str) -> None:
    """What every command must print for a bad preset."""
    want = expectation(path)
    expected_code = COMMANDS[command][1]
    where = f"{path.name} {command}"
    assert code == expected_code, f"{where}: exit {code}, expected {expected_code}\n{output}"
    assert not RAW_CONTROL.search(output), f"{where}: raw control character in {output!r}"
    assert "Traceback" not in output and "internal error" not in output.lower(), f"{where}:\n{output}"
    assert path.name in output, f"{where}: the file is not named\n{output}"
    lines = output.splitlines()
    assert all(len(line) <= LONGEST_LINE for line in lines), f"{where}: a line of {max(map(len, lines))} characters"
    matching = [line for line in lines if want["text"] in line]
    assert matching, f"{where}: nothing says {want['text']!r}\n{output}"
    if want["key"]:
        matching = [line for line in matching if f": {want['key']}" in line]
        assert matching, f"{where}: the line saying {want['text']!r} does not name {want['key']}\n{output}"
    if want["line"]:
        assert any(f".toml:{want['line']}:" in line for line in matching), f"{where}: not at line {want['line']}\n{output}"
    if want["absent"]:
        assert want["absent"] not in output, f"{where}: echoed {want['absent']!r} from a file it must not show"


def argv(command: str, path: Path, runs_dir: Path) -> list[str]:
    extra = COMMANDS[command][0] + (["--runs-dir", str(runs_dir)] if command == "run" else [])
    return [command, str(path), *extra]


def test_the_corpus_covers_every_class_of_hostile_input() -> None:
    assert len(CORPUS) >= 60
    names = " ".join(p.name for p in CORPUS)
    for kind in ("ansi", "nul", "bidi", "component", "output-dir-proc", "output-dir-etc", "output-dir-is-a-file",
                 "2-pow-63", "inf", "nan", "bom", "inline-table", "array-of-tables", "utf8", "utf16", "extends-directory",
                 "extends-etc-passwd", "crlf", "duplicate"):
        assert kind in names, kind
    for path in CORPUS:
        expectation(path)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_a_hostile_preset_is_refused_cleanly(path: Path, command: str, tmp_path: Path, capfd,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process through the console script's main (argument parsing, the one error handler, exit codes)."""
    monkeypatch.chdir(CORPUS_DIR)  # relative output_dir values are relative to where tunedeck runs
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(cli.main(argv(command, path, tmp_path / "runs"))),
                              daemon=True)
    worker.start()
    worker.join(TIME_LIMIT_S)
    assert not worker.is_alive(), f"{path.name} {command}: still running after {TIME_LIMIT_S} s"
    out, err = capfd.readouterr()
    assert result, f"{path.name} {command}: raised instead of returning an exit code\n{err}"
    check_output(path, command, result[0], out + err)
    assert not (tmp_path / "runs").exists(), "a run directory was made for a bad preset"


SUBPROCESS_SAMPLE = ("ansi-key", "model-name-component-300", "extends-etc-passwd", "invalid-utf8-byte")


def test_hostile_presets_through_the_real_console_script(tmp_path: Path) -> None:
    """A sample as real subprocesses (a fresh interpreter, real stdout/stderr), in parallel."""
    jobs = [(CORPUS_DIR / f"{name}.toml", command) for name in SUBPROCESS_SAMPLE for command in COMMANDS]

    def run(job: tuple[Path, str]) -> tuple[Path, str, int, str]:
        path, command = job
        done = subprocess.run([sys.executable, "-m", "tui.cli", *argv(command, path, tmp_path / "runs")],
                              capture_output=True, env=python_env(), cwd=CORPUS_DIR, timeout=TIME_LIMIT_S)
        return path, command, done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")

    with ThreadPoolExecutor(max_workers=2) as pool:  # CI has 2 cores
        for path, command, code, output in pool.map(run, jobs):
            check_output(path, command, code, output)


# --- hostile input that is not a file of the corpus ---------------------------------------------------


def run_cli(args: list[str], capfd) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capfd.readouterr()
    return code, out, err


def test_a_ten_megabyte_model_name_is_refused_at_validation_and_echoed_short(tmp_path: Path, capfd) -> None:
    preset = tmp_path / "huge-name.toml"
    preset.write_text('[model]\nname_or_path = "' + "n" * 10_000_000 + '"\n')
    for command in ("validate", "estimate"):
        code, out, err = run_cli([command, str(preset)], capfd)
        assert code == COMMANDS[command][1]
        assert "model.name_or_path" in err and "a path can be at most 4,095 bytes" in err
        assert len(out + err) < 5000 and "characters)" in err


def test_a_file_over_the_size_limit_is_named_not_read(tmp_path: Path, capfd) -> None:
    preset = tmp_path / "big.toml"
    preset.write_bytes(b"# padding\n" * 1_700_000)
    code, _, err = run_cli(["validate", str(preset)], capfd)
    assert code == exits.FAILED and "big.toml" in err and "a preset is at most" in err


@pytest.mark.parametrize("override, says", [
    ("description.x=1", "'description' is a top-level key with no sub-keys"),
    ("a.b.c=1", "'a.b.c' is not section.key"),
    ("nosuchsection.x=1", "unknown section 'nosuchsection'"),
    ("trainig.seed=1", "did you mean 'training.seed'?"),
    ("learning_rate=1e-4", "write --set training.learning_rate=VALUE"),
    ("training.learning_rate", "it has no '='"),
    ("=1", "it has no key before '='"),
    ("extends=qlora-8b", "extends cannot be set from the command line"),
])
def test_a_bad_set_is_blamed_on_the_argument_not_the_file(override: str, says: str, capfd) -> None:
    for command in ("show", "estimate", "export", "run"):
        extra = ["--to", "accelerate-cmd"] if command == "export" else ["--detach"] if command == "run" else []
        code, _, err = run_cli([command, "demo", "--set", override, *extra], capfd)
        assert code == exits.USAGE, (command, err)
        (line,) = [line for line in err.splitlines() if says in line]
        assert line.startswith(f"--set {override}: error:"), line
        assert "demo.toml" not in line


def test_a_set_value_with_control_characters_is_escaped(capfd) -> None:
    code, out, err = run_cli(["show", "demo", "--set", 'model.name_or_path="x\\u001b[2Jy"'], capfd)
    assert code == exits.USAGE and "\x1b" not in out + err and "x\\x1b[2Jy" in err


def test_command_line_mistakes_are_echoed_escaped(capfd) -> None:
    code, out, err = run_cli(["validate", "demo", "--\x1b[2J"], capfd)
    assert code == exits.USAGE and "\x1b" not in out + err and "\\x1b[2J" in err
    code, out, err = run_cli(["export", "demo", "--to", "\x1b]0;title\x07"], capfd)
    assert code == exits.USAGE and "\x1b" not in err and "\x07" not in err and "invalid choice" in err


def test_a_preset_named_with_control_characters_is_escaped(tmp_path: Path, capfd) -> None:
    preset = tmp_path / "evil\x1b[2J.toml"
    preset.write_text("[training]\nseed = -1\n")
    for command in COMMANDS:
        code, out, err = run_cli(argv(command, preset, tmp_path / "runs"), capfd)
        assert code == COMMANDS[command][1] and "\x1b" not in out + err and "evil\\x1b[2J.toml:2:1:" in err


def test_a_bug_says_what_to_do_and_where_the_traceback_is(tmp_path: Path, capfd, monkeypatch) -> None:
    """The one handler: an exception that is not about the input becomes a message, a file and exit 3."""
    from runner.commands import config_cmds

    def broken(args):
        raise KeyError("a bug \x1b[2J")

    monkeypatch.setattr(config_cmds, "cmd_presets", broken)
    code, out, err = run_cli(["presets"], capfd)
    assert code == exits.BUG
    assert "bug in tunedeck" in err and "Traceback" not in err and "\x1b" not in err
    (report,) = (tmp_path / "state" / "errors").glob("tunedeck-*.txt")
    assert str(report) in err and "Traceback" in report.read_text() and "KeyError" in report.read_text()


def test_an_unwritable_output_is_a_message_not_a_bug(tmp_path: Path, capfd) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(["export", "demo", "--to", "accelerate-yaml", "-o", str(blocker / "out.yaml")], capfd)
    assert code == exits.USAGE and "Traceback" not in err and str(blocker) in err and "bug" not in err


def test_every_exit_code_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):]
    for code, _ in exits.TABLE:
        assert f"| {code} |" in section


def test_a_directory_or_device_given_as_the_preset_is_named_as_such(tmp_path: Path, capfd) -> None:
    for source, says in ((tmp_path, "is a directory, not a preset file"), ("/dev/null", "is not a regular file")):
        for command in COMMANDS:
            code, out, err = run_cli(argv(command, Path(source), tmp_path / "runs"), capfd)
            assert code == COMMANDS[command][1] and says in err, (command, err)


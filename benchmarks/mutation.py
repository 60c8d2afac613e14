"""Mutation-testing benchmark: how many planted bugs do the fast unit tests catch?

For each guarded module this runs mutmut (3.x) over the module's source against the FAST
unit tests that guard it (`-m "not slow"`, `-x`), each mutant under mutmut's CPU-time limit,
then prints one table (module, mutants, killed, survived, timed out, kill rate) and every
surviving mutant (file:line and the change). The table is also written as JSON and Markdown
under --out.

    pip install -e '.[mutation]'
    python benchmarks/mutation.py                       # every module, every mutant (slow)
    python benchmarks/mutation.py --module derived      # one module (repeatable)
    python benchmarks/mutation.py --max-mutants 40      # a deterministic sample per module
    python benchmarks/mutation.py --max-mutants 40 --offset 0.5   # another one, between those

Each module runs in its own scratch copy of the project (under --out/work/<module>), so the
checkout is never mutated and an interrupted run leaves nothing behind in it. The sample
takes evenly spaced mutants from mutmut's own ordering, so the same --max-mutants on the
same source always picks the same mutants. Mutants the tests cannot reach at all
("no tests") count as survivors: an untested line is a gap. Equivalent mutants (ones no
test could kill because the behaviour is unchanged) are listed in benchmarks/MUTATION.md.

Exit status: 0 when the run finished (whatever the kill rate), 2 on bad arguments,
1 when mutmut itself could not run (for example the clean test run failed).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("runner", "tui", "presets", "tests")

# module -> (source files mutated, fast test files that guard them)
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "validate": (
        ("runner/validate.py",),
        ("tests/test_validation.py", "tests/test_validation_rules.py", "tests/test_validation_hints.py",
         "tests/test_schema_bounds.py"),
    ),
    "derived": (
        ("runner/derived.py",),
        ("tests/test_derived.py", "tests/test_derived_boundaries.py", "tests/test_schema.py"),
    ),
    "estimate": (
        # known_models.py is left out: its table is built at import, before mutmut switches a mutant on
        tuple(f"runner/estimate/{p.name}" for p in sorted((ROOT / "runner/estimate").glob("*.py"))
              if p.name != "known_models.py"),
        ("tests/test_estimate_memory.py", "tests/test_estimate_params.py", "tests/test_estimate_relations.py",
         "tests/test_estimate_terms.py", "tests/test_estimate_exact.py", "tests/test_estimate_suggest.py",
         "tests/test_estimate_sources.py", "tests/test_estimate_cli.py"),
    ),
    "stop": (("runner/stop.py",), ("tests/test_stop_units.py", "tests/test_stop_not_running.py",
                                    "tests/test_runner_units.py", "tests/test_runs_control.py")),
    "launch": (
        ("runner/launch.py",),
        ("tests/test_launch_argv.py", "tests/test_launch_units.py", "tests/test_supervise_units.py",
         "tests/test_runner_units.py", "tests/test_runs_control.py"),
    ),
    "export": (
        tuple(f"runner/export/{p.name}" for p in sorted((ROOT / "runner/export").glob("*.py"))),
        ("tests/test_export_fields.py", "tests/test_export.py", "tests/test_export_accepted.py"),
    ),
}

# Functions registered by these decorators get the decorator turned into a plain call at the end of
# the file in the scratch copy (same order, same line numbers): mutmut skips decorated functions,
# and validate.py's rules are all `@rule`.
REGISTRARS = ("rule",)

# In the scratch copy, subprocesses that tests start (`python -m runner.cli ...`) inherit mutmut's
# "stats" mode, in which mutmut looks for its configuration in the current directory and fails.
# This sitecustomize (found through the PYTHONPATH the tests give their subprocesses) runs them
# unmutated while stats are collected; during a mutant's run they do run the mutant.
SITECUSTOMIZE = """import os
if os.environ.get("MUTANT_UNDER_TEST") in ("stats", "fail"):
    os.environ["MUTANT_UNDER_TEST"] = ""
"""

KILLED = {1, 3, 37}
TIMEOUT = {36, -24, 24, 152, 255}


@dataclass
class Survivor:
    name: str
    where: str  # file:line
    change: str  # "- old / + new"
    status: str


@dataclass
class ModuleResult:
    module: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timed_out: int = 0
    seconds: float = 0.0
    sampled_from: int = 0
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def kill_rate(self) -> float:
        # a timed-out mutant was caught too (the mutation made the code hang)
        return 100.0 * (self.killed + self.timed_out) / self.mutants if self.mutants else 0.0


def all_mutant_names(work: Path, files: tuple[str, ...]) -> list[str]:
    """Every mutant mutmut makes for these files, in mutmut's own order (asked inside the scratch
    copy, where mutmut finds its configuration)."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mutmut.mutation.file_mutation import mutate_file_contents\n"
        "from mutmut.utils.format_utils import get_mutant_name\n"
        "names = []\n"
        "for rel in json.load(sys.stdin):\n"
        "    mutated = mutate_file_contents(rel, Path(rel).read_text(), None, None)\n"
        "    names += [get_mutant_name(Path(rel), n) for n in mutated.mutant_names]\n"
        "print(json.dumps(names))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=mutmut_env(), input=json.dumps(list(files)),
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)


def sample(names: list[str], limit: int | None, offset: float = 0.0) -> list[str]:
    """`limit` evenly spaced mutants; `offset` (a fraction of the spacing, 0 <= offset < 1) picks another
    deterministic sample of the same size."""
    if not limit or limit >= len(names):
        return names
    step = len(names) / limit
    return [names[int((i + offset) * step)] for i in range(limit)]


def prepare_workdir(work: Path, files: tuple[str, ...], tests: tuple[str, ...]) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "__snapshots__")
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    for rel in files:
        undecorate(work / rel)
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    existing = [t for t in tests if (ROOT / t).exists()]
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject += "\n[tool.mutmut]\n" + "\n".join(
        [
            'source_paths = ["runner"]',
            f"only_mutate = {json.dumps(list(files))}",
            'also_copy = ["tui", "presets", "sitecustomize.py"]',
            f"pytest_add_cli_args_test_selection = {json.dumps(existing)}",
            'pytest_add_cli_args = ["-m", "not slow", "-x", "-q", "-p", "no:cacheprovider"]',
            # a mutant may use at most this many times its tests' CPU time, then it is a timeout
            "timeout_multiplier = 5.0",
            "timeout_constant = 2.0",
            "use_git_change_detection = false",
        ]
    ) + "\n"
    (work / "pyproject.toml").write_text(pyproject)


def undecorate(path: Path) -> None:
    """`@rule` above `def f(` becomes a blank line, and `rule(f)` is appended at the end."""
    lines = path.read_text().split("\n")
    calls = []
    for i, line in enumerate(lines[:-1]):
        name = line.strip()[1:]
        if line.startswith("@") and name in REGISTRARS and lines[i + 1].startswith("def "):
            lines[i] = ""
            calls.append(f"{name}({lines[i + 1][4:].split('(')[0]})")
    if calls:
        path.write_text("\n".join(lines) + "\n" + "\n".join(calls) + "\n")


def mutmut_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the scratch copy's mutants/ must win, never the checkout
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def function_start_lines(source: str) -> dict[str, int]:
    """'func' and 'Class.method' -> first line of the def (its first decorator)."""
    starts: dict[str, int] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                starts[prefix + node.name] = first
            elif isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")

    visit(ast.parse(source).body, "")
    return starts


def describe(diff: str, start: int) -> tuple[int, str]:
    """The first changed line (in the original file) and the change, from mutmut's function diff."""
    old_line, first, removed, added = 0, 0, [], []
    for line in diff.splitlines():
        if line.startswith("@@"):
            old_line = int(line.split()[1].split(",")[0].lstrip("-"))
        elif line.startswith(("---", "+++")):
            continue
        elif line.startswith("-"):
            first = first or old_line
            removed.append(line[1:].strip())
            old_line += 1
        elif line.startswith("+"):
            first = first or old_line
            added.append(line[1:].strip())
        else:
            old_line += 1
    change = " / ".join(removed) + "  ->  " + " / ".join(added)
    return start + max(first, 1) - 1, change


def survivors_of(work: Path, names: list[str]) -> list[tuple[str, str]]:
    """mutmut's diff for each named mutant (run inside the scratch copy, where mutmut keeps state)."""
    script = (
        "import json, sys\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "names = json.load(sys.stdin)\n"
        "print(json.dumps([[n, get_diff_for_mutant(n)] for n in names]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=mutmut_env(), input=json.dumps(names),
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)


def function_key(mutant_name: str) -> str:
    """runner.derived.x_foo__mutmut_3 -> 'foo'; runner.x.xǁCǁm__mutmut_1 -> 'C.m'."""
    last = mutant_name.rpartition(".")[2].rsplit("__mutmut_", 1)[0]
    if last.startswith("xǁ"):
        return ".".join(p for p in last[2:].split("ǁ") if p)
    return last[2:] if last.startswith("x_") else last


def dotted(rel: str) -> str:
    """runner/export/sbatch.py -> runner.export.sbatch; a package's __init__.py -> the package."""
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def run_module(module: str, out: Path, limit: int | None, children: int, offset: float = 0.0) -> ModuleResult:
    files, tests = MODULES[module]
    work = out / "work" / module
    prepare_workdir(work, files, tests)
    names = all_mutant_names(work, files)
    chosen = sample(names, limit, offset)
    result = ModuleResult(module=module, sampled_from=len(names))
    started = time.monotonic()
    print(f"== {module}: {len(chosen)} of {len(names)} mutants, tests: {', '.join(tests)}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *chosen],
        cwd=work, env=mutmut_env(), capture_output=True, text=True,
    )
    result.seconds = time.monotonic() - started
    (out / f"{module}.log").write_text(proc.stdout + proc.stderr)
    uncovered = "could not find any test case for any mutant" in proc.stdout
    if proc.returncode != 0 and not uncovered:
        raise RuntimeError(f"mutmut failed for {module} (see {out / (module + '.log')}):\n{proc.stdout[-2000:]}")
    wanted = set(chosen)
    status: dict[str, int | None] = {}
    for rel in files:
        meta = work / "mutants" / (rel + ".meta")
        status.update(json.loads(meta.read_text())["exit_code_by_key"])
    if uncovered:  # mutmut stops early when no selected test reaches the module at all
        status = {name: 33 for name in status}
    lost: list[tuple[str, str]] = []
    for name in chosen:
        code = status.get(name)
        result.mutants += 1
        if code in KILLED:
            result.killed += 1
        elif code in TIMEOUT:
            result.timed_out += 1
        else:
            result.survived += 1
            label = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}.get(code, f"exit {code}")
            lost.append((name, label))
    assert wanted <= set(status), "mutmut did not record every chosen mutant"
    diffs = dict(survivors_of(work, [n for n, _ in lost])) if lost else {}
    starts = {rel: function_start_lines((work / rel).read_text()) for rel in files}
    for name, label in lost:
        rel = next(r for r in files if name.rpartition(".")[0] == dotted(r))
        line, change = describe(diffs[name], starts[rel].get(function_key(name), 1))
        result.survivors.append(Survivor(name=name, where=f"{rel}:{line}", change=change, status=label))
    shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(results: list[ModuleResult]) -> str:
    lines = [
        "| module | mutants | killed | survived | timed out | kill rate | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        of = f" (sample of {r.sampled_from})" if r.mutants < r.sampled_from else ""
        lines.append(
            f"| {r.module} | {r.mutants}{of} | {r.killed} | {r.survived} | {r.timed_out} | {r.kill_rate:.1f}% | {r.seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="run only this module (repeatable)")
    parser.add_argument("--max-mutants", type=int, default=None, metavar="N", help="deterministic sample of N mutants per module")
    parser.add_argument("--offset", type=float, default=0.0, metavar="F",
                        help="with --max-mutants: shift the sample by F of the spacing (0 <= F < 1), another sample")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the JSON/Markdown table")
    parser.add_argument("--children", type=int, default=2, help="parallel mutant workers (default 2)")
    args = parser.parse_args(argv)
    if args.max_mutants is not None and args.max_mutants < 1:
        parser.error("--max-mutants must be at least 1")
    if not 0.0 <= args.offset < 1.0:
        parser.error("--offset must be at least 0 and below 1")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 1
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: list[ModuleResult] = []
    for module in args.module or list(MODULES):
        try:
            results.append(run_module(module, out, args.max_mutants, args.children, args.offset))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(str(exc), file=sys.stderr)
            return 1
        r = results[-1]
        (out / f"{r.module}.json").write_text(json.dumps(asdict(r) | {"kill_rate": round(r.kill_rate, 1)}, indent=2))
        print(f"   {r.module}: {r.killed + r.timed_out}/{r.mutants} killed ({r.kill_rate:.1f}%) in {r.seconds:.0f}s", flush=True)
    table = markdown(results)
    print()
    print(table)
    for r in results:
        for s in r.survivors:
            print(f"{s.status:>11}  {s.where}  {s.change}")
    stamp = "-".join(sorted(r.module for r in results))
    (out / f"mutation-{stamp}.md").write_text(
        table + "\n" + "\n".join(f"- {s.status}: `{s.where}` `{s.change}`" for r in results for s in r.survivors) + "\n"
    )
    (out / f"mutation-{stamp}.json").write_text(
        json.dumps([asdict(r) | {"kill_rate": round(r.kill_rate, 1)} for r in results], indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One home for each runner fact: the demo ids are defined once, and comments name modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import runner.demo_spec as demo_spec
from runner.schema import Config

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(list((ROOT / "runner").rglob("*.py")) + list((ROOT / "tui").rglob("*.py")))


def test_demo_ids_are_defined_once_in_demo_spec():
    defined = {name: [] for name in ("DEMO_MODEL", "DEMO_DATA", "DEMO_CACHE_VERSION", "TINY_DEMO_CONFIG")}
    for path in SOURCES:
        for name in defined:
            if re.search(rf"^\s*{name}\s*(:[^=]*)?=", path.read_text(encoding="utf-8"), re.M):
                defined[name].append(path.relative_to(ROOT).as_posix())
    assert defined == {name: ["runner/demo_spec.py"] for name in defined}


def test_schema_defaults_are_the_demo_ids():
    config = Config()
    assert config.model.name_or_path == demo_spec.DEMO_MODEL
    assert config.data.path == demo_spec.DEMO_DATA
    assert demo_spec.demo_data_file().is_file()


def _module_prefix(parts: list[str]) -> tuple[Path | None, int]:
    """The file or package a dotted runner.x.y name starts with, and how many parts it used."""
    path, used = ROOT / "runner", 1
    while used < len(parts):
        candidate = path / parts[used]
        if candidate.with_suffix(".py").is_file():
            return candidate.with_suffix(".py"), used + 1
        if not candidate.is_dir():
            break
        path, used = candidate, used + 1
    return (path / "__init__.py" if used > 1 else None), used


def test_every_runner_module_named_in_the_code_exists():
    missing = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\brunner(?:\.[A-Za-z_]\w*)+", text):
            parts = match.group(0).split(".")
            module, used = _module_prefix(parts)
            if module is None:
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
            elif used < len(parts) and not re.search(rf"\b{parts[used]}\b", module.read_text(encoding="utf-8")):
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)} ({parts[used]} not in {module.name})")
    assert missing == []


def test_the_run_started_estimate_is_estimate_to_dict(tmp_path):
    from runner.estimate import estimate
    from runner.train import _estimate

    config = Config()
    assert _estimate(config) == estimate(config).to_dict()
    unknown = config.model_copy(update={"model": config.model.model_copy(update={"name_or_path": str(tmp_path)})})
    assert _estimate(unknown) is None  # a directory without config.json cannot be sized: no estimate, no crash


def test_tunedeck_estimate_sizes_for_the_measured_data_like_the_editor(monkeypatch, tmp_path, capsys):
    """`tunedeck data` records the longest row; `tunedeck estimate`, the gauge and the launch dialog all
    read it through runner.estimate.estimate_for."""
    import json

    from runner import data_lengths, presets
    from runner.cli import main
    from runner.estimate import estimate, estimate_for

    monkeypatch.setenv("TUNEDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TUNEDECK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    config = presets.require("demo").config

    def cli_estimate() -> dict:
        capsys.readouterr()
        main(["estimate", "demo", "--json"])
        return json.loads(capsys.readouterr().out)

    unmeasured = cli_estimate()
    assert unmeasured["peak_bytes"] == estimate(config).peak_bytes
    data_lengths.record(config, {"max": 20, "p99": 18, "count": 100})
    measured = cli_estimate()
    expected = estimate(config, data_lengths=data_lengths.lookup(config))
    assert measured["peak_bytes"] == expected.peak_bytes == estimate_for(config).peak_bytes
    assert measured["peak_bytes"] < unmeasured["peak_bytes"]
    assert any("longest row" in note for note in measured["notes"])

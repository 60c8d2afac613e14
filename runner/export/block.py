"""The preset embedded in every export, so `tunedeck import` gives back the same config.

A block is delimited by two marker lines:

    # tunedeck-preset begin          every line in between carries the prefix before the marker ("# ")
    # tunedeck-preset begin raw      lines in between are plain TOML (a here-document in the sbatch script)
    # tunedeck-preset end
"""

from __future__ import annotations

import re

from runner.schema import Config

BEGIN, END = "tunedeck-preset begin", "tunedeck-preset end"
_BEGIN_LINE = re.compile(r"^(?P<prefix>.*?)" + re.escape(BEGIN) + r"(?P<raw> raw)?\s*$")


def preset_toml(config: Config) -> str:
    """The config as a compact, self-contained preset (no help comments, `extends` resolved)."""
    from runner import presets

    return presets.dumps(config.model_copy(update={"extends": ""}), with_help=False)


def commented(config: Config, prefix: str = "# ") -> str:
    lines = [f"{prefix}{BEGIN}"]
    lines += [f"{prefix}{line}".rstrip() for line in preset_toml(config).splitlines()]
    lines.append(f"{prefix}{END}")
    return "\n".join(lines) + "\n"


def raw(config: Config, prefix: str = "# ") -> str:
    return f"{prefix}{BEGIN} raw\n{preset_toml(config).rstrip()}\n{prefix}{END}\n"


def extract(text: str) -> tuple[str, int] | None:
    """(the embedded TOML, 1-based line of its begin marker), or None when the text has no block."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _BEGIN_LINE.match(line)
        if not m:
            continue
        prefix, is_raw = m.group("prefix"), bool(m.group("raw"))
        body = []
        for inner in lines[i + 1:]:
            if END in inner and inner.strip().endswith(END):
                return "\n".join(body) + "\n", i + 1
            if is_raw:
                body.append(inner)
            elif inner.startswith(prefix):
                body.append(inner[len(prefix):])
            elif inner.strip() == prefix.strip():
                body.append("")  # a blank line lost its trailing space
            else:
                return None  # the block was edited into something we cannot read
        return None
    return None

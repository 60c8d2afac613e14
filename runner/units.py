"""Counts as people write them: 918K parameters, 1.24M, 494M, 7.62B. One rule for every screen and command."""

from __future__ import annotations

_UNITS = (("K", 1e3), ("M", 1e6), ("B", 1e9), ("T", 1e12))


def count_text(n: int | float | None) -> str:
    """`n` with three significant digits in the largest unit it reaches (K, M, B, T): 918656 -> '919K',
    1_235_814_400 -> '1.24B'; below 1000 as it is; None -> '?'. Never '0.00B' for a small model."""
    if n is None:
        return "?"
    reached = [i for i, (_, size) in enumerate(_UNITS) if abs(n) >= size]
    if not reached:
        return f"{n:g}" if isinstance(n, float) else str(n)
    index = reached[-1]
    while True:
        unit, size = _UNITS[index]
        scaled = n / size
        digits = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
        text = f"{scaled:.{digits}f}"
        if abs(float(text)) >= 1000 and index + 1 < len(_UNITS):  # 999,999 rounds to 1000K: say 1.00M
            index += 1
            continue
        return text + unit

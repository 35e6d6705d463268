"""Sizes in words, the same on every screen: decimal units (1 MB = 1,000,000 bytes).

Decimal, not binary (MiB), because that is what the tools volunteers already know say —
Raspberry Pi Imager and balenaEtcher, and the capacity printed on a disc or a USB stick
(a "700 MB" CD-R, a "16 GB" stick). The kiosk, the dashboard (`bytes` in coordinator/web/ui.js)
and the CLIs all follow this one rule.
"""

from __future__ import annotations

UNITS = ("B", "KB", "MB", "GB", "TB")


def size_text(n: float) -> str:
    """``3145728`` → ``"3.1 MB"``; whole bytes below 1 kB, one decimal above."""
    value = float(n)
    for unit in UNITS[:-1]:
        if abs(value) < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} {UNITS[-1]}"

"""Typed errors of the relay benchmark harness: each names what went wrong and what to change,
so `bench_relay.py` can print one clear line instead of a traceback."""

from __future__ import annotations


class BenchError(Exception):
    """Base class of every error the harness raises on purpose."""


class BenchConfigError(BenchError):
    """A BENCH_* setting (or a load spec) is malformed or out of range."""


class ServerStartError(BenchError):
    """A server under test exited, stayed silent, or printed something other than its ready line."""


class ProcessGoneError(BenchError):
    """The process whose CPU or memory was asked for no longer exists (or is a zombie)."""


class LoadGenError(BenchError):
    """The load generator failed: a connection dropped, an echo never came, or the process died."""

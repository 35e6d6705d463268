"""The burnstand appliance: the agent that owns the drives and the kiosk UI beside it."""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("burnstand")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
    __version__ = "0.0.0"

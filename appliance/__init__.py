"""The burnstand appliance: the agent that owns the drives and the kiosk UI beside it.

`__version__` is looked up on first use: `importlib.metadata` costs a command such as `burn`
more start-up time than the rest of what it imports before its first event.
"""


def __getattr__(name: str) -> str:
    if name == "__version__":
        import importlib.metadata

        try:
            version = importlib.metadata.version("burnstand")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
            version = "0.0.0"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

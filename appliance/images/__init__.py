"""Images to burn: what a file is and how it unpacks (formats, stream), and the
content-addressed cache with its verified, resumable downloads (cache).

The cache pulls in aiohttp; it is imported on first use so that a burn from the command line,
which needs only `formats` and `stream`, starts without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ImageCache"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from appliance.images import cache

        return getattr(cache, name)
    raise AttributeError(name)

"""Image transfer: the coordinator's content-addressed image store, its REST endpoints and the
catalog lookups (by MD5 for the burn protocol's WHATIS/INFO, by SHA-256 for the store).

``coordinator.images.catalog`` holds ``lookup_md5``/``lookup_sha256``; ``coordinator.images.http``
the endpoints, which the rendezvous route table lists so the OpenAPI document and docs cover them.
"""

from __future__ import annotations

# The rendezvous package lists this package's endpoints, and the endpoints are built from the
# rendezvous helpers. Importing it first makes either import order finish with both complete.
import coordinator.rendezvous  # noqa: F401

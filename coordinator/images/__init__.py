"""The coordinator's image store: content-addressed blobs and the catalog lookups (by MD5 for the
burn protocol's WHATIS/INFO, by SHA-256 for the store).

``coordinator.images.blobs`` keeps the files, ``coordinator.images.catalog`` holds
``lookup_md5``/``lookup_sha256``; ``derive`` records what an image that entered the store unpacks
to (and its block map), whether it was uploaded or fetched from its take's URL by ``fetch``, and
``events`` tells the appliance links it is there. Its REST endpoints are
``coordinator.rendezvous.images``, part of the rendezvous route table, so the OpenAPI document
and docs cover them.
"""

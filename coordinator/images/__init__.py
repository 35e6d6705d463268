"""The coordinator's image store: content-addressed blobs and the catalog lookups (by MD5 for the
burn protocol's WHATIS/INFO, by SHA-256 for the store).

``coordinator.images.blobs`` keeps the files, ``coordinator.images.catalog`` holds
``lookup_md5``/``lookup_sha256``. Its REST endpoints are ``coordinator.rendezvous.images``, part of
the rendezvous route table, so the OpenAPI document and docs cover them.
"""

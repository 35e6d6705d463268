"""The OpenAPI 3.1 document of the rendezvous API, generated from the endpoint descriptions.

Request schemas are the very objects the handlers validate with; every operation lists the status
codes it can answer, and every error is documented as ``application/problem+json``.
"""

from __future__ import annotations

import re
from typing import Any

from coordinator import __version__
from coordinator.errors import PROBLEM_CONTENT_TYPE
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PUBLIC, Endpoint

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    206: "Partial content (the requested Range)",
    400: "Malformed request (not JSON, bad query parameter)",
    401: "Missing, unknown, expired or revoked credential",
    403: "The credential's role (or show) may not do this",
    404: "Unknown id",
    408: "The upload stopped sending; nothing was kept",
    409: "Duplicate, or conflicts with the current state",
    416: "The Range is outside the file",
    422: "A body field is invalid (see `field`)",
    429: "Too many requests from this address; retry later",
    503: "No session master available",
    507: "Not enough space in the image store; nothing was kept",
}


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, regex in re.findall(r"\{(\w+)(?::([^}]+))?\}", ep.route):
        schema = schemas.ID if regex else schemas.PATH_PARAMS.get(name, schemas.PATH_TEXT)
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    params += ep.query
    if ep.paged:
        params += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
            },
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "schema": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": schemas.MAX_ID,
                    "default": 0,
                },
            },
        ]
    return params


def _operation(ep: Endpoint) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in ep.status_codes:
        entry: dict[str, Any] = {"description": _REASONS.get(code, "")}
        if code < 300 and code != 204:
            # Image downloads are bytes; every other success is a JSON record.
            media = ep.extra_doc.get("content", "application/json")
            schema = ep.response or schemas.OBJECT
            if not media.endswith("json"):
                schema = {"type": "string", "format": "binary"}
            entry["content"] = {media: {"schema": schema}}
        elif code >= 400:
            entry["content"] = {
                PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
        responses[str(code)] = entry
    op: dict[str, Any] = {
        "operationId": f"{ep.method.lower()}_{ep.handler.__name__}_{len(ep.path)}",
        "summary": ep.summary,
        "tags": [ep.tag],
        "x-roles": list(ep.roles),
        "parameters": _parameters(ep),
        "responses": responses,
    }
    if ep.seed_flow:
        op["x-seed-flow"] = ep.seed_flow
    if "description" in ep.extra_doc:
        op["description"] = ep.extra_doc["description"]
    if ep.roles == (PUBLIC,):
        op["security"] = []
    if ep.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ep.body}}}
    elif "request" in ep.extra_doc:
        # A raw upload: bytes of the media type named, never empty (a take is at least 1 byte).
        raw = {"type": "string", "format": "binary", "minLength": 1}
        op["requestBody"] = {
            "required": True,
            "content": {ep.extra_doc["request"]: {"schema": raw}},
        }
    return op


def build(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "burnstand coordinator: rendezvous API",
            "version": __version__,
            "description": "Shows, people, credentials, the session-master pool and sessions. "
            "Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": {"Problem": schemas.PROBLEM},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }

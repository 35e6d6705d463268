"""A small JSON Schema checker for request bodies, driven by the schemas in the OpenAPI document.

The same schema objects are served in ``/api/v1/openapi.json`` and enforced here, so the document
cannot drift from what the server accepts. Only the keywords those schemas use are supported:
type, properties, required, additionalProperties, minLength, maxLength, minimum, maximum, pattern,
maxItems, items, and anyOf. The first fault found is reported with the JSON field it is in.
As in JSON Schema, a number with no fraction (``159.0``) is an integer; `validate` hands it back
as a Python int, so handlers only ever see ints for integer fields.
"""

from __future__ import annotations

import re
from typing import Any

from coordinator.errors import Invalid

Schema = dict[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: Any, expected: str) -> bool:
    # JSON has no separate boolean-is-integer; Python's bool subclasses int, so exclude it.
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[expected])


def _describe(value: Any) -> str:
    for name in _TYPES:
        if _type_ok(value, name):
            return name
    return type(value).__name__


def validate(value: Any, schema: Schema, path: str = "") -> Any:
    """Raise ``Invalid`` (422, with ``field``) for the first place ``value`` breaks ``schema``;
    return ``value`` with integral numbers in integer fields made ints."""
    field = path or None
    where = f"field {path!r}" if path else "the body"
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                return validate(value, option, path)
            except Invalid as exc:
                errors.append(exc.detail)
        raise Invalid(errors[0], field=field)
    expected = schema.get("type")
    if expected is not None and not _type_ok(value, expected):
        raise Invalid(f"{where} must be {expected}, got {_describe(value)}", field=field)
    if expected == "integer" and isinstance(value, float):
        value = int(value)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise Invalid(
                f"{where} must not be shorter than {schema['minLength']} characters", field=field
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise Invalid(f"{where} must be at most {schema['maxLength']} characters", field=field)
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            hint = schema.get("description", f"the pattern {schema['pattern']}")
            raise Invalid(f"{where} must match {hint}", field=field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise Invalid(f"{where} must be ≥ {schema['minimum']}", field=field)
        if "maximum" in schema and value > schema["maximum"]:
            too = "is too large" if value > 2**63 - 1 else "must be"
            raise Invalid(f"{where} {too} (at most {schema['maximum']})", field=field)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(f"{where} must have at most {schema['maxItems']} items", field=field)
        if "items" in schema:
            value = [
                validate(item, schema["items"], f"{path}[{i}]" if path else f"[{i}]")
                for i, item in enumerate(value)
            ]
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                sub = f"{path}.{key}" if path else key
                raise Invalid(f"field {sub!r} is required", field=sub)
        checked = dict(value)
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                checked[key] = validate(item, props[key], sub)
            elif schema.get("additionalProperties", True) is False:
                known = ", ".join(sorted(props))
                raise Invalid(f"unknown field {sub!r} (known: {known})", field=sub)
        if schema.get("minProperties", 0) > len(value):
            raise Invalid(
                f"{where} must set at least {schema['minProperties']} field(s)", field=field
            )
        value = checked
    return value

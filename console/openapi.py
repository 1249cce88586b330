"""The OpenAPI 3 document of /api/v1, made from the same route table that
registers the handlers (console/api.py ROUTES) and from the proto messages,
so it cannot drift from what is served."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from crontrio.console.api import PREFIX, ROUTES
from crontrio.protos import crontrio_pb2 as pb

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    # proto3 JSON writes 64-bit integers as strings
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "int64"},
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "gRPC status name, e.g. INVALID_ARGUMENT"},
                "field": {"type": "string", "description": "the field at fault, when one is"},
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
}


def _schema_of(message: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if message.name not in schemas:
        schemas[message.name] = {}  # placeholder against recursion
        properties: dict[str, Any] = {}
        for f in message.fields:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                value = f.message_type.fields_by_name["value"]
                properties[f.json_name] = {"type": "object", "additionalProperties": _field_schema(value, schemas)}
                continue
            item = _field_schema(f, schemas)
            properties[f.json_name] = {"type": "array", "items": item} if f.is_repeated else item
        schemas[message.name] = {"type": "object", "properties": properties}
    return {"$ref": f"#/components/schemas/{message.name}"}


def _field_schema(f: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if f.message_type is not None:
        return _schema_of(f.message_type, schemas)
    return dict(_SCALARS.get(f.type, {"type": "string"}))


def _page_schema(kind: str, item: str, schemas: dict[str, Any]) -> dict[str, Any]:
    ref = _schema_of(pb.DESCRIPTOR.message_types_by_name[item], schemas)
    return {"type": "object", "properties": {kind: {"type": "array", "items": ref}, "nextPageToken": {"type": "string"}}}


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    schemas["ListJobsPage"] = _page_schema("jobs", "Job", schemas)
    schemas["ListRunsPage"] = _page_schema("runs", "Run", schemas)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method.lower()}{_camel(route.path)}"}
        if route.roles:
            operation["description"] = f"Needs role {route.roles} or higher."
        else:
            operation["security"] = []
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in re.findall(r"{(\w+)}", route.path)
        ]
        parameters += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in route.query]
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            body_ref = _schema_of(pb.DESCRIPTOR.message_types_by_name[route.body], schemas)
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body_ref}}}
        ok: dict[str, Any] = {"description": "OK"}
        if route.response:
            if route.response in schemas:
                ref = {"$ref": f"#/components/schemas/{route.response}"}
            else:
                ref = _schema_of(pb.DESCRIPTOR.message_types_by_name[route.response], schemas)
            ok["content"] = {"application/json": {"schema": ref}}
        error = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        operation["responses"] = {
            "201" if route.method == "POST" and route.path == "/jobs" else "200": ok,
            **{code: error for code in ("400", "401", "403", "404", "409", "429")},
        }
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "crontrio API",
            "version": "v1",
            "description": "The admin gRPC API over HTTP in the proto3 JSON mapping. "
            "Send 'Authorization: Bearer <token>' (an API token from [tokens], or a session token from /api/v1/login).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _camel(path: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", path)
    return "".join(w[:1].upper() + w[1:] for w in words if w)

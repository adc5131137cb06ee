"""The ingest API's reference page, rendered on the server from the OpenAPI schema the API serves.

Ninja's default docs page (Swagger UI) loads scripts from a CDN and runs inline script, which our CSP refuses;
this page needs no script at all and cannot drift from the schema, because it is built from it.
"""

import json
import uuid

from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from ninja.openapi.docs import DocsBase

METHODS = ("get", "post", "put", "patch", "delete")


def _resolve(schema, components):
    """A schema with a top-level $ref replaced by the component it points to."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return components.get(ref.rsplit("/", 1)[1], {})
    return schema


def _type_label(schema, components):
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    kind = schema.get("type", "")
    if "anyOf" in schema:
        return " | ".join(_type_label(option, components) for option in schema["anyOf"])
    if kind == "array":
        items = schema.get("items", {})
        return f"array of {items.get('title') or _type_label(items, components)}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind or "any"


def _limits(schema):
    """The constraints a client must respect, as short phrases."""
    phrases = []
    if "minLength" in schema:
        phrases.append(f"at least {schema['minLength']} characters")
    if "maxLength" in schema:
        phrases.append(f"at most {schema['maxLength']} characters")
    if "maxItems" in schema:
        phrases.append(f"at most {schema['maxItems']} items")
    if "minimum" in schema:
        phrases.append(f"≥ {schema['minimum']}")
    if "maximum" in schema:
        phrases.append(f"≤ {schema['maximum']}")
    if "pattern" in schema:
        phrases.append(f"matches {schema['pattern']}")
    return phrases


def _fields(schema, components):
    schema = _resolve(schema, components)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": _type_label(prop, components),
            "required": name in required,
            "limits": _limits(prop),
            "values": prop.get("enum", []),
            "default": json.dumps(prop["default"]) if "default" in prop and prop["default"] != "" else "",
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _model(schema, components):
    """A named object schema (request body or response body) and its fields."""
    resolved = _resolve(schema, components)
    return {
        "name": resolved.get("title", ""),
        "description": resolved.get("description", ""),
        "fields": _fields(resolved, components),
    }


def example_event():
    return {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "occurred_at": timezone.now().replace(microsecond=0).isoformat(),
        "url": "https://www.example.com/pricing",
        "title": "Pricing",
        "visitor_id": "v-4f1c2a",
        "email": "anna@example.com",
    }


def reference(openapi, base_url):
    """The page's content: one entry per operation, with its request fields, responses and an example."""
    components = openapi.get("components", {}).get("schemas", {})
    schemes = openapi.get("components", {}).get("securitySchemes", {})
    key_header = next((s["name"] for s in schemes.values() if s.get("in") == "header"), "X-Api-Key")
    operations = []
    for path, methods in openapi.get("paths", {}).items():
        for method in METHODS:
            operation = methods.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            event = example_event()
            example = {"events": [event]} if path.endswith("/batch") else event
            operations.append(
                {
                    "id": operation.get("operationId", ""),
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "request": _model(body["schema"], components) if body else None,
                    "responses": [
                        {
                            "status": status,
                            "description": answer.get("description", ""),
                            "body": _model(answer["content"]["application/json"]["schema"], components)
                            if "application/json" in answer.get("content", {})
                            else None,
                        }
                        for status, answer in operation.get("responses", {}).items()
                    ],
                    "curl": (
                        f"curl -X {method.upper()} {base_url}{path} \\\n"
                        f"  -H 'Content-Type: application/json' \\\n"
                        f"  -H '{key_header}: lc_xxxxxxxx_your-secret' \\\n"
                        f"  -d '{json.dumps(example, indent=2)}'"
                    ),
                }
            )
    return {
        "title": openapi.get("info", {}).get("title", ""),
        "version": openapi.get("info", {}).get("version", ""),
        "key_header": key_header,
        "operations": operations,
    }


class ReferencePage(DocsBase):
    """Ninja's docs hook (NinjaAPI(docs=...)): our page instead of Swagger UI."""

    def render_page(self, request, api, **kwargs):
        openapi = api.get_openapi_schema(path_params=kwargs)
        base_url = request.build_absolute_uri("/").rstrip("/")
        context = {
            "api": reference(openapi, base_url),
            "openapi_url": reverse(f"{api.urls_namespace}:openapi-json", kwargs=kwargs),
        }
        return render(request, "capture/api_docs.html", context)

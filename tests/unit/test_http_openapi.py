"""The OpenAPI document matches the app's routes, both ways."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from master.http.app import create_app
from master.http.openapi import document
from tests.integration.test_api_harness import open_ctx


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD next to every GET
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"  # a directory: documented as one templated path
        ops.add((route.method.lower(), path))
    return ops


def _document_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_route_documented_and_vice_versa(tmp_path: Path) -> None:
    """Each (method, path) routed is in the document, and each documented one is routed."""
    ctx = await open_ctx(tmp_path)
    try:
        app = create_app(ctx)
        routed = _router_operations(app)
        documented = _document_operations()
        assert routed - documented == set(), "routes missing from the OpenAPI document"
        assert documented - routed == set(), "documented operations with no route"
        assert ("post", "/api/v1/jobs") in routed
    finally:
        await ctx.close()


def test_document_shape() -> None:
    """The document is OpenAPI 3.1, every $ref resolves, every operation lists responses."""
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    for item in doc["paths"].values():
        for operation in item.values():
            assert operation["responses"] and operation["summary"]


def test_document_is_a_copy() -> None:
    """Mutating a returned document does not change the next one."""
    doc = document()
    doc["paths"].clear()
    assert document()["paths"]

"""Read-only overviews: a project's history, the fleet's last hours, and a project's badge.

``GET /api/v1/projects/{name}`` (``store.history``), ``GET /api/v1/fleet``
(``store.fleet`` plus the connected slaves and their load), and
``GET /badge/{name}.svg`` (``master.http.badge``). Names are matched in any
spelling (PEP 503).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from master.http.badge import release_badge
from master.http.keys import CTX
from master.http.validation import check_query, project_name, query_int
from master.store.schema import project_key

API = "/api/v1"
#: Name segments of the URLs (PEP 508 names; validated again by ``project_name``).
NAME = r"{name:[A-Za-z0-9][A-Za-z0-9._-]{0,199}}"
#: Badges change when a release is tested: a short cache keeps a README's badge fresh.
BADGE_MAX_AGE = 300

routes = web.RouteTableDef()


def _name(request: web.Request) -> str:
    return project_name(request.match_info["name"], "project name")


@routes.get(f"{API}/projects/{NAME}")
async def project_history(request: web.Request) -> web.Response:
    """Every tested release of a project, newest first, with its numbers; 404 if none."""
    check_query(request.query, frozenset())
    name = _name(request)
    history = await request.app[CTX].store.history.releases(name)
    if not history["releases"]:
        return web.json_response(
            {"error": "not_found", "detail": f"no tested release of {project_key(name)}"},
            status=404,
        )
    history["urls"] = {
        "page": f"/projects/{history['project']}",
        "badge": f"/badge/{history['project']}.svg",
        "jobs": f"{API}/jobs?project={history['project']}",
    }
    return web.json_response(history)


def slave_load(slave: dict[str, Any]) -> dict[str, Any]:
    """A slave as the fleet view shows it: its slots, busy ones and their share."""
    slots, busy = int(slave.get("slots") or 0), int(slave.get("busy") or 0)
    return {
        "name": slave["name"],
        "slots": slots,
        "busy": busy,
        "load": round(busy / slots, 3) if slots else None,
        "accel": slave.get("accel"),
        "draining": bool(slave.get("draining")),
        "last_heartbeat": slave.get("last_heartbeat"),
    }


@routes.get(f"{API}/fleet")
async def fleet(request: web.Request) -> web.Response:
    """The queue now, and per hour over the last ``hours`` (default 24): finished jobs,
    outcome mix, infrastructure failure rate, queue depth; the slaves and their load."""
    check_query(request.query, frozenset({"hours"}))
    hours = query_int(request.query, "hours", 24, 1, 24 * 7)
    assert hours is not None
    ctx = request.app[CTX]
    body = await ctx.store.fleet.hours(time.time(), hours)
    slaves = [slave_load(s.to_dict()) for s in ctx.slaves.list()]
    slots = sum(s["slots"] for s in slaves)
    busy = sum(s["busy"] for s in slaves)
    body["slaves"] = slaves
    load = round(busy / slots, 3) if slots else None
    body["capacity"] = {"slots": slots, "busy": busy, "load": load}
    return web.json_response(body)


@routes.get(f"/badge/{NAME}.svg")
async def badge(request: web.Request) -> web.Response:
    """The outcome of the project's newest tested release as an SVG badge."""
    check_query(request.query, frozenset())
    name = _name(request)
    history = await request.app[CTX].store.history.releases(name)
    newest = history["releases"][0] if history["releases"] else None
    svg = release_badge(
        history["project"],
        None if newest is None else newest["version"],
        None if newest is None else newest["outcome"],
        None if newest is None else newest["verdict"],
    )
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        charset="utf-8",
        headers={"Cache-Control": f"public, max-age={BADGE_MAX_AGE}"},
    )

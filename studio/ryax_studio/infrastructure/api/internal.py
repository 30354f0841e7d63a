"""The studio's internal API: what the runner (and only the runner) asks of it.

`GET /studio/internal/v1/deployments/{deployment_id}/values`: the values of a deployment's
secrets and password-type inputs, frozen when it was requested. They never travel in events:
the runner fetches them once, when it records the deployment, and keeps them sealed with its own
key.

Authorised by the service credential `RYAX_INTERNAL_TOKEN`, shared by the studio and the runner
only (`Authorization: Bearer <token>`, compared in constant time); without it configured the
route answers 503. Never through the gateway: the gateway does not route `/studio/internal`
(dev/platform.py's route table), and a request that came through a proxy (X-Forwarded-For,
Forwarded, X-Real-Ip) is answered 404 whatever its token. Not in the OpenAPI document.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from ryax_kit.web import HttpError

from ...application.use_cases import Deployments

log = logging.getLogger(__name__)
PREFIX = "/studio/internal/v1"
TOKEN = web.AppKey("internal_token", str)
INTERNAL_DEPLOYMENTS = web.AppKey("internal_deployments", Deployments)
#: Headers a reverse proxy (the gateway) adds: a request carrying one did not come from inside.
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-Ip")

routes = web.RouteTableDef()


def check_caller(request: web.Request) -> None:
    """The shared internal token, and no sign of the gateway."""
    if any(h in request.headers for h in PROXY_HEADERS):
        raise HttpError(404, "not_found", "not found")
    expected = request.app[TOKEN]
    if not expected:
        raise HttpError(
            503, "unavailable", "the internal API is not configured (RYAX_INTERNAL_TOKEN)"
        )
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        log.warning("internal API: refused caller", extra={"path": request.path})
        raise HttpError(401, "unauthenticated", "a service token is required")


@routes.get(PREFIX + "/deployments/{deployment_id}/values")
async def deployment_values(request: web.Request) -> web.Response:
    check_caller(request)
    deployment, values = await request.app[INTERNAL_DEPLOYMENTS].values_for_runner(
        request.match_info["deployment_id"]
    )
    body = {
        "deployment_id": deployment.id,
        "project_id": deployment.project_id,
        "values": [
            {"step_id": step, "input": name, "value": value}
            for (step, name), value in values.items()
        ],
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})

"""The values of a deployment's secrets and password-type inputs, fetched from the studio.

They are not in WorkflowDeployRequested: when the runner records a deployment whose definition
names some (`SecretInput`), it asks the studio's internal route for them, once, with the shared
service credential (`RYAX_INTERNAL_TOKEN`), and keeps them sealed with its own key
(`SecretBox`). The studio answers them for that deployment only, while it is active.

Failures: the studio unreachable, 5xx, or refusing the credential (401/403: a configuration to
fix) are transient, the message is tried again until it passes; a deployment the studio does
not know (404) or no longer deploys (409) can never get its values: the message is
dead-lettered with the reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from ryax_kit.messaging import PoisonMessage
from ryax_kit.messaging.consumer import TransientError

log = logging.getLogger(__name__)


class StudioValues:
    def __init__(self, studio_url: str, token: str, timeout_seconds: float = 10.0) -> None:
        self._url = studio_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, deployment_id: str) -> dict[tuple[str, str], str]:
        """(step id, input) -> value (text: a non-text JSON value as its JSON)."""
        if not self._token:
            raise TransientError(
                "RYAX_INTERNAL_TOKEN is not set: the values of the deployment's secrets "
                "cannot be fetched from the studio"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self._url}/studio/internal/v1/deployments/{deployment_id}/values"
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
            status = resp.status
            if status == 200:
                body: dict[str, Any] = await resp.json()
            else:
                detail = (await resp.text())[:300]
        if status in (404, 409):
            raise PoisonMessage(
                f"the studio gives no values for deployment {deployment_id} "
                f"(HTTP {status}: {detail})"
            )
        if status != 200:
            raise TransientError(
                f"the studio did not give the values of deployment {deployment_id} "
                f"(HTTP {status}: {detail})"
            )
        values: dict[tuple[str, str], str] = {}
        for item in body.get("values", []):
            value = item.get("value")
            values[(str(item["step_id"]), str(item["input"]))] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        log.info(
            "deployment values fetched from the studio",
            extra={"deployment_id": deployment_id, "values": len(values)},
        )
        return values

"""The HTTP layer under the SDK: one httpx.Client, the bearer token, error mapping, SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import __version__
from .errors import ApiError, RyaxError, ServerUnreachable, error_for_status

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0
Params = Mapping[str, str | int | float | bool | None]


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


class Transport:
    """Sends requests to the gateway; every error becomes a `RyaxError` subclass."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        verify: bool = True,
    ) -> None:
        self.url = url.rstrip("/") or DEFAULT_URL
        self.token = token
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            verify=verify,
            headers={"User-Agent": f"ryax-cli/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers: dict[str, str] = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Params | None = None,
        content: bytes | str | None = None,
        files: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": self._headers(headers)}
        if params:
            kwargs["params"] = {k: _param(v) for k, v in params.items() if v is not None}
        if json_body is not None:
            kwargs["json"] = json_body
        if content is not None:
            kwargs["content"] = content
        if files is not None:
            kwargs["files"] = files
        if data is not None:
            kwargs["data"] = data
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(self.url, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.url, _transport_reason(exc)) from exc
        if response.status_code >= 400:
            raise api_error(response, method, path)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RyaxError(
                f"unexpected answer from {method} {path}: not JSON "
                f"({response.headers.get('content-type', 'no content type')})",
                detail=response.text[:2000],
            ) from exc

    def get(self, path: str, params: Params | None = None) -> Any:
        return self.json("GET", path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.json("POST", path, json_body=body, **kwargs)

    def put(self, path: str, body: Any = None) -> Any:
        return self.json("PUT", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.json("DELETE", path)

    def download(self, path_or_url: str, into: Any) -> int:
        """Stream a body into a binary file object; returns the number of bytes written."""
        headers = self._headers({"Accept": "*/*"})
        if not path_or_url.startswith(("http://", "https://")) or path_or_url.startswith(self.url):
            target = path_or_url
        else:
            # Presigned URLs of another host must not receive our token.
            headers.pop("Authorization", None)
            target = path_or_url
        written = 0
        try:
            with self._http.stream("GET", target, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise api_error(response, "GET", target)
                for chunk in response.iter_bytes():
                    into.write(chunk)
                    written += len(chunk)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(self.url, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.url, _transport_reason(exc)) from exc
        return written

    def sse(self, path: str, params: Params | None = None) -> Iterator[SseEvent]:
        """Server-sent events of a streaming GET; ends when the server closes the stream."""
        headers = self._headers({"Accept": "text/event-stream"})
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            with self._http.stream(
                "GET", path, headers=headers, params=query, timeout=httpx.Timeout(30.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise api_error(response, "GET", path)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    # A server that does not stream answers the whole document at once.
                    response.read()
                    yield SseEvent(event="document", data=response.text)
                    return
                yield from parse_sse(response.iter_lines())
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(self.url, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.url, _transport_reason(exc)) from exc


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    event, event_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SseEvent(event=event, data="\n".join(data), id=event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
    if data:
        yield SseEvent(event=event, data="\n".join(data), id=event_id)


def api_error(response: httpx.Response, method: str, path: str) -> ApiError:
    status = response.status_code
    error, detail, body = _error_body(response)
    if not error:
        error = response.reason_phrase.lower().replace(" ", "_") or f"http_{status}"
    if detail is None and status in (502, 503, 504):
        detail = (
            f"the gateway could not reach the service behind {path.split('?')[0]} "
            f"(HTTP {status} {response.reason_phrase}): is it running?"
        )
    return error_for_status(status, error, detail, method=method, path=path, body=body)


def _error_body(response: httpx.Response) -> tuple[str, Any, dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if not text or response.status_code in (502, 503, 504):
            return "", None, {}
        return "", text[:500], {}
    if isinstance(body, dict):
        error = body.get("error")
        detail = body.get("detail", body.get("message"))
        if isinstance(error, dict):  # {"error": {"code", "message"}} style
            return str(error.get("code", "")), error.get("message", detail), body
        return (str(error) if error else ""), detail, body
    return "", body, {}


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused (is the platform running?)"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "unknown host"
    return text


def _param(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

"""``Client`` and ``AsyncClient``: the two drivers of flows (``_flow.py``), with one error
mapping and one retry rule (see ``_calls.Call`` for which requests are safe to repeat).

Retry rule: a request that never reached the server (connection refused, connect or pool
timeout) is retried for every endpoint; a request that may have reached it (read timeout,
dropped connection, 502/503/504) is retried only when repeating it cannot act twice. Retries
back off exponentially with jitter. When they run out, ``TransportError`` (or the last
``ApiError``) is raised: nothing is dropped silently. The rule is one flow, ``_attempts``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from typing import Any

import httpx
import orjson

from ._calls import Call
from ._current import mark_progress
from ._endpoints import Endpoints
from ._exceptions import ApiError, TransportError, api_error
from ._flow import Flow, Once, Send, Sleep, Step, T
from ._settings import ClientSettings, current_settings

USER_AGENT = "branchwork-python/0.1"
_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Base(Endpoints):
    def __init__(self, url: str | None = None, api_token: str | None = None, *,
                 timeout: float | None = None, retries: int | None = None,
                 settings: ClientSettings | None = None) -> None:
        s = settings or current_settings()
        given = {"url": url, "api_token": api_token, "timeout": timeout, "retries": retries}
        self.settings = replace(s, **{k: v for k, v in given.items() if v is not None})
        self.url = self.settings.url.rstrip("/")
        # Keys of ``Once`` steps this client has carried out (queue limits, workflow
        # definitions): written to the server once per client, not on every send.
        self.done: set[Any] = set()

    def _headers(self) -> dict[str, str]:
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self.settings.api_token:
            headers["authorization"] = f"Bearer {self.settings.api_token}"
        return headers

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        mark_progress()  # a request from inside a task (send, KV, ...) shows it is alive
        kwargs: dict[str, Any] = {}
        if call.json is not None:
            kwargs["content"] = orjson.dumps(call.json)
            kwargs["headers"] = {"content-type": "application/json"}
        if call.params:
            kwargs["params"] = {k: v for k, v in call.params.items() if v is not None}
        if call.extra_timeout:
            kwargs["timeout"] = self.settings.timeout + call.extra_timeout
        return kwargs

    def _delay(self, attempt: int) -> float:
        base = min(self.settings.max_backoff, self.settings.backoff * 2 ** attempt)
        return base * (0.5 + random.random() / 2)

    def _attempts(self, call: Call) -> Flow[Any]:
        """One call with the retry rule: the flow every ``execute`` runs."""
        attempt = 0
        while True:
            try:
                response: httpx.Response = yield Send(call)
            except httpx.TransportError as exc:
                if attempt >= self.settings.retries or not (isinstance(exc, _NOT_SENT)
                                                            or call.safe):
                    raise TransportError(
                        f"{call.method} {self.url}{call.path} failed: "
                        f"{type(exc).__name__}: {exc}",
                        maybe_applied=not isinstance(exc, _NOT_SENT)) from exc
            else:
                done, value = self._outcome(call, response)
                if done or attempt >= self.settings.retries:
                    if isinstance(value, ApiError):
                        raise value
                    return value
            yield Sleep(self._delay(attempt))
            attempt += 1

    def _outcome(self, call: Call, response: httpx.Response) -> tuple[bool, Any]:
        """(done, value): value is the parsed result, or an ApiError to raise or retry on."""
        status = response.status_code
        if status < 400:
            content = response.content
            return True, call.parse(orjson.loads(content) if content else None)
        if status == 404 and call.none_on_404:
            return True, call.parse(None)
        try:
            body = orjson.loads(response.content)
        except ValueError:
            body = None
        error = api_error(status, body, response.text)
        return not (status in _RETRY_STATUSES and call.safe), error


class Client(_Base):
    """Synchronous client of the v1 API; thread-safe, reuse one per process.

    ``Client()`` reads ``BRANCHWORK_URL`` / ``BRANCHWORK_API_TOKEN`` (or ``configure()``);
    arguments win. ``transport`` is for tests (``httpx.MockTransport``).
    """

    def __init__(self, url: str | None = None, api_token: str | None = None, *,
                 timeout: float | None = None, retries: int | None = None,
                 settings: ClientSettings | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, api_token, timeout=timeout, retries=retries, settings=settings)
        self._http = httpx.Client(base_url=self.url, headers=self._headers(),
                                  timeout=self.settings.timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, call: Call) -> Any:
        """Run one ``Call`` with the retry rule; the building block of every method."""
        return self.run(self._attempts(call))

    def run(self, flow: Flow[T]) -> T:
        """The sync driver: carry out each step of ``flow`` and return what it returns."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = self._perform(step), None
            except BaseException as exc:  # thrown into the flow: its finally blocks run
                value, error = None, exc

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Call):
            return self.execute(step)
        if isinstance(step, Send):
            return self._http.request(step.call.method, step.call.path,
                                      **self._request_kwargs(step.call))
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, Once):
            if step.key in self.done:
                return None
            out = self.execute(step.make())
            self.done.add(step.key)
            return out
        raise TypeError(f"not a flow step: {step!r}")


class AsyncClient(_Base):
    """The async twin of ``Client``: same methods, awaited. One per event loop."""

    def __init__(self, url: str | None = None, api_token: str | None = None, *,
                 timeout: float | None = None, retries: int | None = None,
                 settings: ClientSettings | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(url, api_token, timeout=timeout, retries=retries, settings=settings)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers(),
                                       timeout=self.settings.timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def execute(self, call: Call) -> Any:
        return await self.run(self._attempts(call))

    async def run(self, flow: Flow[T]) -> T:
        """The async driver: ``Client.run`` with each step awaited."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = await self._perform(step), None
            except BaseException as exc:  # thrown into the flow: its finally blocks run
                value, error = None, exc

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Call):
            return await self.execute(step)
        if isinstance(step, Send):
            return await self._http.request(step.call.method, step.call.path,
                                            **self._request_kwargs(step.call))
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, Once):
            if step.key in self.done:
                return None
            out = await self.execute(step.make())
            self.done.add(step.key)
            return out
        raise TypeError(f"not a flow step: {step!r}")

"""``Client`` and ``AsyncClient``: the v1 HTTP API as methods, with one error mapping and one
retry rule shared by both (see ``_calls.Call`` for which requests are safe to repeat).

Retry rule: a request that never reached the server (connection refused, connect or pool
timeout) is retried for every endpoint; a request that may have reached it (read timeout,
dropped connection, 502/503/504) is retried only when repeating it cannot act twice. Retries
back off exponentially with jitter. When they run out, ``TransportError`` (or the last
``ApiError``) is raised: nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
import orjson

from . import _calls as calls
from ._calls import UNSET, Call
from ._config import ClientSettings, current_settings
from ._exceptions import ApiError, TransportError, api_error

USER_AGENT = "branchwork-python/0.1"
_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Base:
    def __init__(self, url: str | None = None, api_token: str | None = None, *,
                 timeout: float | None = None, retries: int | None = None,
                 settings: ClientSettings | None = None) -> None:
        s = settings or current_settings()
        given = {"url": url, "api_token": api_token, "timeout": timeout, "retries": retries}
        self.settings = replace(s, **{k: v for k, v in given.items() if v is not None})
        self.url = self.settings.url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self.settings.api_token:
            headers["authorization"] = f"Bearer {self.settings.api_token}"
        return headers

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
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

    def _outcome(self, call: Call, response: httpx.Response) -> tuple[bool, Any]:
        """(done, value): value is the parsed result, or an ApiError to raise or retry on."""
        status = response.status_code
        if status < 400:
            return True, call.parse(response.json() if response.content else None)
        if status == 404 and call.none_on_404:
            return True, call.parse(None)
        try:
            body = response.json()
        except ValueError:
            body = None
        error = api_error(status, body, response.text)
        return not (status in _RETRY_STATUSES and call.safe), error

    def _should_retry(self, call: Call, exc: httpx.TransportError) -> bool:
        return isinstance(exc, _NOT_SENT) or call.safe

    def _transport_error(self, call: Call, exc: httpx.TransportError) -> TransportError:
        return TransportError(
            f"{call.method} {self.url}{call.path} failed: {type(exc).__name__}: {exc}",
            maybe_applied=not isinstance(exc, _NOT_SENT))


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
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path,
                                              **self._request_kwargs(call))
            except httpx.TransportError as exc:
                if attempt >= self.settings.retries or not self._should_retry(call, exc):
                    raise self._transport_error(call, exc) from exc
            else:
                done, value = self._outcome(call, response)
                if done or attempt >= self.settings.retries:
                    if isinstance(value, ApiError):
                        raise value
                    return value
            time.sleep(self._delay(attempt))
            attempt += 1

    # -- senders and readers -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.execute(calls.health())

    def send_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v1/tasks with a TaskIn body → ``{"id", "duplicate"}``."""
        return self.execute(calls.send_task(body))

    def send_tasks(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /v1/tasks/batch: one transaction → ``[{"id", "duplicate"}, ...]`` in order."""
        return self.execute(calls.send_tasks(bodies))

    def get_task(self, task_id: int) -> dict[str, Any]:
        return self.execute(calls.get_task(task_id))

    def list_tasks(self, *, status: str | None = None, queue: str | None = None,
                   name: str | None = None, root_id: int | None = None,
                   parent_id: int | None = None, workflow_run_id: int | None = None,
                   cursor: int | None = None, limit: int = 100) -> dict[str, Any]:
        """GET /v1/tasks → ``{"tasks": [...], "next_cursor": id | None}`` newest first."""
        return self.execute(calls.list_tasks(
            status=status, queue=queue, name=name, root_id=root_id, parent_id=parent_id,
            workflow_run_id=workflow_run_id, cursor=cursor, limit=limit))

    def cancel_task(self, task_id: int) -> dict[str, Any]:
        return self.execute(calls.cancel_task(task_id))

    def retry_task(self, task_id: int) -> dict[str, Any]:
        return self.execute(calls.retry_task(task_id))

    # -- key-value store -----------------------------------------------------------------
    def kv_get(self, key: str) -> str | None:
        return self.execute(calls.kv_get(key))

    def kv_set(self, key: str, value: str) -> None:
        self.execute(calls.kv_set(key, value))

    def kv_delete(self, key: str) -> bool:
        return self.execute(calls.kv_delete(key))

    def kv_set_if_absent(self, key: str, value: str) -> bool:
        return self.execute(calls.kv_set_if_absent(key, value))

    def kv_increment(self, key: str, by: int = 1) -> int:
        return self.execute(calls.kv_increment(key, by))

    def kv_list(self, prefix: str = "", after: str | None = None,
                limit: int = 100) -> dict[str, Any]:
        return self.execute(calls.kv_list(prefix, after, limit))

    # -- queues and workers --------------------------------------------------------------
    def configure_queue(self, name: str, *, concurrency_limit: int | None = UNSET,
                        paused: bool | None = None) -> dict[str, Any]:
        """PUT /v1/queues/{name}; ``concurrency_limit=None`` removes a limit, omitted keeps it."""
        return self.execute(calls.configure_queue(name, concurrency_limit=concurrency_limit,
                                                  paused=paused))

    def list_queues(self) -> list[dict[str, Any]]:
        return self.execute(calls.list_queues())

    def register_worker(self, worker_id: str, *, queues: Sequence[str] = (),
                        info: Mapping[str, Any] | None = None,
                        tasks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """POST /v1/workers/register; ``tasks`` are ``TaskDefinition.registration()`` dicts."""
        return self.execute(calls.register_worker(worker_id, queues=queues, info=info,
                                                  tasks=tasks))

    def stop_worker(self, worker_id: str) -> dict[str, Any]:
        return self.execute(calls.stop_worker(worker_id))

    def list_workers(self) -> list[dict[str, Any]]:
        return self.execute(calls.list_workers())

    def claim(self, worker_id: str, *, queues: Sequence[str] = ("default",),
              task_names: Sequence[str] | None = None, limit: int = 1,
              wait_seconds: float = 0.0) -> list[dict[str, Any]]:
        """POST /v1/claim (long-polls up to ``wait_seconds``) → the leased tasks."""
        return self.execute(calls.claim(worker_id, queues=queues, task_names=task_names,
                                        limit=limit, wait_seconds=wait_seconds))

    def heartbeat(self, worker_id: str,
                  tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST /v1/heartbeat with ``[{id, lease_token}]`` → ``{tasks, cancel, lost, ...}``."""
        return self.execute(calls.heartbeat(worker_id, tasks))

    def report(self, worker_id: str | None,
               results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /v1/tasks/report → one ``{id, outcome, status}`` verdict per result."""
        return self.execute(calls.report(worker_id, results))

    def release(self, worker_id: str, tasks: Sequence[Mapping[str, Any]]) -> list[Any]:
        return self.execute(calls.release(worker_id, tasks))


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
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path,
                                                    **self._request_kwargs(call))
            except httpx.TransportError as exc:
                if attempt >= self.settings.retries or not self._should_retry(call, exc):
                    raise self._transport_error(call, exc) from exc
            else:
                done, value = self._outcome(call, response)
                if done or attempt >= self.settings.retries:
                    if isinstance(value, ApiError):
                        raise value
                    return value
            await asyncio.sleep(self._delay(attempt))
            attempt += 1

    async def health(self) -> dict[str, Any]:
        return await self.execute(calls.health())

    async def send_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.execute(calls.send_task(body))

    async def send_tasks(self, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return await self.execute(calls.send_tasks(bodies))

    async def get_task(self, task_id: int) -> dict[str, Any]:
        return await self.execute(calls.get_task(task_id))

    async def list_tasks(self, *, status: str | None = None, queue: str | None = None,
                         name: str | None = None, root_id: int | None = None,
                         parent_id: int | None = None, workflow_run_id: int | None = None,
                         cursor: int | None = None, limit: int = 100) -> dict[str, Any]:
        return await self.execute(calls.list_tasks(
            status=status, queue=queue, name=name, root_id=root_id, parent_id=parent_id,
            workflow_run_id=workflow_run_id, cursor=cursor, limit=limit))

    async def cancel_task(self, task_id: int) -> dict[str, Any]:
        return await self.execute(calls.cancel_task(task_id))

    async def retry_task(self, task_id: int) -> dict[str, Any]:
        return await self.execute(calls.retry_task(task_id))

    async def kv_get(self, key: str) -> str | None:
        return await self.execute(calls.kv_get(key))

    async def kv_set(self, key: str, value: str) -> None:
        await self.execute(calls.kv_set(key, value))

    async def kv_delete(self, key: str) -> bool:
        return await self.execute(calls.kv_delete(key))

    async def kv_set_if_absent(self, key: str, value: str) -> bool:
        return await self.execute(calls.kv_set_if_absent(key, value))

    async def kv_increment(self, key: str, by: int = 1) -> int:
        return await self.execute(calls.kv_increment(key, by))

    async def kv_list(self, prefix: str = "", after: str | None = None,
                      limit: int = 100) -> dict[str, Any]:
        return await self.execute(calls.kv_list(prefix, after, limit))

    async def configure_queue(self, name: str, *, concurrency_limit: int | None = UNSET,
                              paused: bool | None = None) -> dict[str, Any]:
        return await self.execute(calls.configure_queue(
            name, concurrency_limit=concurrency_limit, paused=paused))

    async def list_queues(self) -> list[dict[str, Any]]:
        return await self.execute(calls.list_queues())

    async def register_worker(self, worker_id: str, *, queues: Sequence[str] = (),
                              info: Mapping[str, Any] | None = None,
                              tasks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        return await self.execute(calls.register_worker(worker_id, queues=queues, info=info,
                                                        tasks=tasks))

    async def stop_worker(self, worker_id: str) -> dict[str, Any]:
        return await self.execute(calls.stop_worker(worker_id))

    async def list_workers(self) -> list[dict[str, Any]]:
        return await self.execute(calls.list_workers())

    async def claim(self, worker_id: str, *, queues: Sequence[str] = ("default",),
                    task_names: Sequence[str] | None = None, limit: int = 1,
                    wait_seconds: float = 0.0) -> list[dict[str, Any]]:
        return await self.execute(calls.claim(worker_id, queues=queues, task_names=task_names,
                                              limit=limit, wait_seconds=wait_seconds))

    async def heartbeat(self, worker_id: str,
                        tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self.execute(calls.heartbeat(worker_id, tasks))

    async def report(self, worker_id: str | None,
                     results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return await self.execute(calls.report(worker_id, results))

    async def release(self, worker_id: str, tasks: Sequence[Mapping[str, Any]]) -> list[Any]:
        return await self.execute(calls.release(worker_id, tasks))

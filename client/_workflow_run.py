"""``WorkflowRun`` (a started run: wait, cancel, read) and ``Channel`` (the run's key-value
state). Both keep the client they came from (``Origin``)."""

from __future__ import annotations

from typing import Any

from . import _calls as calls
from ._exceptions import WaitTimeout, WorkflowCancelled, WorkflowFailed
from ._flow import Deadline, Flow
from ._http import AsyncClient, Client
from ._origin import Origin
from ._waiting import lending
from .protocol import TERMINAL_STATUSES

TERMINAL_RUN = frozenset(TERMINAL_STATUSES)
WAIT_SLICE = 30.0  # one long-poll of a wait; a longer wait is several


class WorkflowRun:
    """A started run. ``result()`` waits and returns ``{node: result}`` of succeeded nodes,
    or raises ``WorkflowFailed`` / ``WorkflowCancelled`` / ``WaitTimeout``."""

    def __init__(self, run_id: int, *, workflow_name: str | None = None,
                 duplicate: bool = False, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.id = int(run_id)
        self.workflow_name = workflow_name
        self.duplicate = duplicate
        self.run: dict[str, Any] | None = None
        self.origin = Origin(client, async_client)

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.id} {self.workflow_name or ''} {self.status or '?'}>"

    @property
    def status(self) -> str | None:
        return (self.run or {}).get("status")

    def _update(self, run: dict[str, Any]) -> WorkflowRun:
        self.run = run
        self.workflow_name = run.get("workflow_name", self.workflow_name)
        return self

    def _outcome(self) -> dict[str, Any]:
        run = self.run or {}
        if run.get("status") == "succeeded":
            return {n["node"]: n["result"] for n in run.get("nodes", [])
                    if n["status"] == "succeeded"}
        if run.get("status") == "failed":
            raise WorkflowFailed(self.id, run)
        raise WorkflowCancelled(self.id, run)

    # -- flows ---------------------------------------------------------------------------
    def _refreshing(self) -> Flow[WorkflowRun]:
        return self._update((yield calls.get_run(self.id)))

    def _waiting(self, timeout: float | None) -> Flow[dict[str, Any]]:
        deadline = Deadline(timeout)
        while True:
            self._update((yield calls.wait_run(self.id, deadline.slice(WAIT_SLICE))))
            if self.status in TERMINAL_RUN:
                return self._outcome()
            if deadline.passed():
                raise WaitTimeout(self.id, timeout or 0.0, self.status, self.run)

    # -- the public methods: a flow and a driver ------------------------------------------
    def refresh(self) -> WorkflowRun:
        return self.origin.run(self._refreshing())

    async def arefresh(self) -> WorkflowRun:
        return await self.origin.arun(self._refreshing())

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        return self.origin.run(lending(self._waiting(timeout)))

    wait = result

    async def aresult(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        return await self.origin.arun(lending(self._waiting(timeout)))

    def cancel(self) -> dict[str, Any]:
        return self.origin.sync().execute(calls.cancel_run(self.id))

    async def acancel(self) -> dict[str, Any]:
        return await self.origin.async_().execute(calls.cancel_run(self.id))

    @property
    def channel(self) -> Channel:
        return Channel(self.id, client=self.origin.client,
                       async_client=self.origin.async_client)


class Channel:
    """Key-value state of one run (any JSON value), stored in PostgreSQL."""

    def __init__(self, run_id: int, *, client: Client | None = None,
                 async_client: AsyncClient | None = None) -> None:
        self.run_id = run_id
        self.origin = Origin(client, async_client)

    def _getting(self, key: str, default: Any) -> Flow[Any]:
        body = yield calls.channel_get(self.run_id, key)
        return default if body is None else body["value"]

    def get(self, key: str, default: Any = None) -> Any:
        return self.origin.run(self._getting(key, default))

    def set(self, key: str, value: Any) -> None:
        self.origin.sync().execute(calls.channel_set(self.run_id, key, value))

    def increment(self, key: str, by: int = 1) -> int:
        return self.origin.sync().execute(calls.channel_increment(self.run_id, key, by))

    def all(self) -> dict[str, Any]:
        return self.origin.sync().execute(calls.channel_all(self.run_id))

    async def aget(self, key: str, default: Any = None) -> Any:
        return await self.origin.arun(self._getting(key, default))

    async def aset(self, key: str, value: Any) -> None:
        await self.origin.async_().execute(calls.channel_set(self.run_id, key, value))

    async def aincrement(self, key: str, by: int = 1) -> int:
        return await self.origin.async_().execute(calls.channel_increment(self.run_id, key, by))

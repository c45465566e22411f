"""What a worker tells the server at start, written once as flows: its tasks
(``TaskDefinitionIn``), the queue limits declared in code, the workflows and the schedules.

Registries, definitions and workflows are read through their attributes only, so this module
sits below them and imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from . import _calls as calls
from ._exceptions import ApiError
from ._flow import Flow
from ._limits import definitions, queue_rate_limit, write_limits

log = logging.getLogger("branchwork.worker")


def task_registration(d: Any) -> dict[str, Any]:
    """A task definition as the server's TaskDefinitionIn (for POST /v1/workers/register).

    ``defaults`` holds the send options in TaskIn field names (so a server-side sender,
    such as a cron scheduler, can merge them into a TaskIn body), plus the informational
    keys ``cron``, ``concurrency_limit``, ``retry_backoff_function`` and ``on_events`` (shown
    with the definition; the triggers themselves are the top-level ``on_events``).
    """
    defaults: dict[str, Any] = {"priority": d.priority, "max_retries": d.max_retries}
    if d.timeout_seconds is not None:
        defaults["timeout_seconds"] = d.timeout_seconds
    defaults.update(d.stuck_options())
    defaults.update(d.backoff_options())
    if d.cron is not None:
        defaults["cron"] = d.cron
    if getattr(d, "on_events", None):
        defaults["on_events"] = list(d.on_events)
    if d.retry_backoff_fn is not None:
        defaults["retry_backoff_function"] = True
    if d.queue.concurrency_limit is not None:
        defaults["concurrency_limit"] = d.queue.concurrency_limit
    out = {"name": d.name, "queue": d.queue.name, "defaults": defaults,
           "args_schema": d.spec.json_schema()}
    if getattr(d, "on_events", None):
        out["on_events"] = list(d.on_events)
    return out


def task_schedule(d: Any) -> dict[str, Any]:
    """A cron task as a ``POST /v1/schedules/register`` item, named ``task:<name>``."""
    options: dict[str, Any] = {"queue": d.queue.name, "priority": d.priority,
                               "max_retries": d.max_retries}
    if d.timeout_seconds is not None:
        options["timeout_seconds"] = d.timeout_seconds
    options.update(d.backoff_options())
    return {"name": f"task:{d.name}", "kind": "task", "target": d.name, "cron": d.cron,
            "args": d.spec.to_json((), {}), "options": options}


def schedules(registry: Any) -> list[dict[str, Any]]:
    """The registry's cron tasks and cron workflows as ``POST /v1/schedules/register`` items.
    A schedule is named ``task:<name>`` or ``workflow:<name>``."""
    out = [task_schedule(d) for d in registry.tasks.values() if d.cron is not None]
    for wf in registry.workflows.values():
        item = wf.schedule()
        if item is not None:
            out.append(item)
    return out


def queue_settings(registry: Any) -> Flow[None]:
    """Write the queue concurrency limits and the rate limits declared in code to the server
    (idempotent)."""
    yield from write_limits(definitions(u for d in registry.tasks.values()
                                        for u in d.rate_limits))
    for q in registry.queues().values():
        if q.concurrency_limit is not None:
            yield calls.configure_queue(q.name, concurrency_limit=q.concurrency_limit)
        if q.retention:
            yield calls.configure_queue(q.name, retention=q.retention)
        yield from queue_rate_limit(q)


def workflows_and_schedules(registry: Any) -> Flow[None]:
    """Register the registry's workflows (once per client) and its schedules."""
    for wf in registry.workflows.values():
        yield from wf.registering()
    items = schedules(registry)
    if items:
        yield calls.register_schedules(items)


def worker_registration(registry: Any, worker_id: str, *, queues: Sequence[str],
                        info: Mapping[str, Any]) -> Flow[None]:
    """Everything a worker registers at start, in order: itself and its tasks, the queue
    limits, the workflows, the schedules."""
    yield calls.register_worker(worker_id, queues=queues, info=info,
                                tasks=registry.registrations())
    yield from _past_forbidden(queue_settings(registry))
    yield from _past_forbidden(workflows_and_schedules(registry))


def _past_forbidden(flow: Flow[None]) -> Flow[None]:
    """``flow``, going on past each step the server refuses with ``403 forbidden``: a worker
    whose token is limited to some queues may run the whole app's registry, and the queue
    limits, workflows and schedules outside its queues are another token's to declare."""
    try:
        step = next(flow)
    except StopIteration:
        return
    while True:
        try:
            value = yield step
        except ApiError as exc:
            if exc.status != 403:
                try:
                    step = flow.throw(exc)
                except StopIteration:
                    return
                continue
            log.warning("not registered, outside this worker token's queues: %s", exc.message)
            value = None
        try:
            step = flow.send(value)
        except StopIteration:
            return

"""Who may call what: one rule per route, and the scope checks of the scoped roles.

Every route of the app has an entry in ``RULES``, keyed by its method and its path as
declared. A route without one is refused to every role but admin, and
``tests/test_tokens_routes.py`` fails, naming it: adding a route means deciding who may call
it. The rule of a route is checked by ``authorize`` (an app-wide dependency) before the
route runs; what a route's body or its subject says (the queues of a claim, the name and
queue of a send, the task being read) is checked by the route itself with the ``check_*``
functions below, because only it has them parsed. Roles (docs/operations.md, "Tokens"):

- admin: everything. ``BRANCHWORK_API_TOKEN`` is an admin token.
- worker: the worker protocol (register, claim, heartbeat, report, release), what a worker's
  start-up registers (queue limits, workflows, schedules) and what its tasks use (child
  sends, KV, workflow channels and directives), all limited to its queue patterns.
- sender: send tasks and start workflow runs, and read them, limited to its task-name
  and/or queue patterns.
- viewer: every read, and a read-only studio.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any, Final

from fastapi import Request

from ..protocol import DEFAULT_QUEUE, is_glob
from .credentials import CALLER
from .engine.errors import Forbidden
from .engine.tokens import Caller


class Public:
    """Needs no authentication at all (health, the studio's login page and assets)."""


PUBLIC: Final = Public()
VIEW: Final = frozenset({"viewer"})
ANY: Final = frozenset({"viewer", "worker", "sender"})
WORKER: Final = frozenset({"worker"})
SENDER: Final = frozenset({"sender"})
WORKER_VIEW: Final = frozenset({"worker", "viewer"})
SCOPED_READ: Final = frozenset({"worker", "sender", "viewer"})  # the route checks the subject
ADMIN: Final = frozenset[str]()

Rule = frozenset[str] | Public

# (method, path as declared) -> the roles besides admin that may call it.
RULES: Final[dict[tuple[str, str], Rule]] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/openapi.json"): ANY,
    ("GET", "/docs"): ANY,
    ("GET", "/docs/oauth2-redirect"): ANY,
    ("GET", "/redoc"): ANY,
    ("GET", "/docs/redoc.js"): PUBLIC,  # ReDoc's script, as the fastapi-offline package has it
    ("GET", "/metrics"): VIEW,
    # tasks
    ("POST", "/v1/tasks"): frozenset({"sender", "worker"}),
    ("POST", "/v1/tasks/batch"): frozenset({"sender", "worker"}),
    ("GET", "/v1/tasks/{task_id}"): SCOPED_READ,
    ("GET", "/v1/tasks/{task_id}/why"): SCOPED_READ,
    ("GET", "/v1/tasks"): VIEW,
    ("POST", "/v1/tasks/{task_id}/cancel"): ADMIN,
    ("POST", "/v1/tasks/{task_id}/retry"): ADMIN,
    # durable tasks: events and signals resume waiting tasks (a signal's route checks the
    # task's scope); steps are read by a re-run and written under the attempt's lease
    ("POST", "/v1/events"): frozenset({"sender", "worker"}),
    ("POST", "/v1/tasks/{task_id}/signal"): frozenset({"sender", "worker"}),
    ("GET", "/v1/tasks/{task_id}/steps"): SCOPED_READ,
    ("POST", "/v1/tasks/{task_id}/steps"): WORKER,
    ("POST", "/v1/tasks/bulk"): ADMIN,
    ("POST", "/v1/prune"): ADMIN,
    # progress and streams: a running attempt writes (fenced by its lease token), readers
    # follow (the route checks the task's scope)
    ("POST", "/v1/tasks/{task_id}/stream"): WORKER,
    ("GET", "/v1/tasks/{task_id}/stream"): SCOPED_READ,
    # people in the loop (a decision resumes a task, as a cancel stops one: admin's)
    ("GET", "/v1/approvals"): VIEW,
    ("POST", "/v1/tasks/{task_id}/approve"): ADMIN,
    ("POST", "/v1/tasks/{task_id}/reject"): ADMIN,
    # the worker protocol (reports, heartbeats and releases are fenced by lease tokens,
    # which only the claim hands out, and the claim is scoped)
    ("POST", "/v1/workers/register"): WORKER,
    ("POST", "/v1/workers/{worker_id}/stop"): WORKER,
    ("GET", "/v1/workers"): VIEW,
    ("GET", "/v1/task-definitions"): VIEW,
    ("POST", "/v1/claim"): WORKER,
    ("POST", "/v1/heartbeat"): WORKER,
    ("POST", "/v1/tasks/report"): WORKER,
    ("POST", "/v1/tasks/{task_id}/complete"): WORKER,
    ("POST", "/v1/tasks/{task_id}/fail"): WORKER,
    ("POST", "/v1/tasks/release"): WORKER,
    # queues
    ("GET", "/v1/queues"): VIEW,
    ("GET", "/v1/queues/throughput"): VIEW,
    ("PUT", "/v1/queues/{name}"): WORKER,
    ("POST", "/v1/queues/{name}/purge"): ADMIN,
    ("PUT", "/v1/queues/{name}/rate-limit"): WORKER,
    # named rate limits (docs/flow-control.md): workers declare them as they declare queues
    ("PUT", "/v1/rate-limits/{name}"): WORKER,
    ("GET", "/v1/rate-limits"): VIEW,
    ("GET", "/v1/rate-limits/{name}"): VIEW,
    ("DELETE", "/v1/rate-limits/{name}"): ADMIN,
    # trees
    ("GET", "/v1/trees"): VIEW,
    ("GET", "/v1/trees/{task_id}"): VIEW,
    ("POST", "/v1/trees/{task_id}/cancel"): ADMIN,
    ("GET", "/v1/trees/{task_id}/wait"): VIEW,
    # workflows
    ("PUT", "/v1/workflows/{name}"): WORKER,
    ("GET", "/v1/workflows"): VIEW,
    ("GET", "/v1/workflows/{name}"): VIEW,
    ("POST", "/v1/workflows/{name}/runs"): SENDER,
    ("GET", "/v1/workflow-runs"): VIEW,
    ("GET", "/v1/workflow-runs/{run_id}"): SCOPED_READ,
    ("POST", "/v1/workflow-runs/{run_id}/cancel"): ADMIN,
    ("POST", "/v1/workflow-runs/{run_id}/rerun"): ADMIN,
    ("GET", "/v1/workflow-runs/{run_id}/wait"): frozenset({"sender", "viewer"}),
    ("POST", "/v1/workflow-runs/{run_id}/directives"): WORKER,
    ("GET", "/v1/workflow-runs/{run_id}/channel"): WORKER_VIEW,
    ("GET", "/v1/workflow-runs/{run_id}/channel/{key:path}"): WORKER_VIEW,
    ("PUT", "/v1/workflow-runs/{run_id}/channel/{key:path}"): WORKER,
    ("POST", "/v1/workflow-runs/{run_id}/channel/{key:path}/increment"): WORKER,
    # schedules
    ("PUT", "/v1/schedules/{name:path}"): ADMIN,
    ("POST", "/v1/schedules/register"): WORKER,
    ("GET", "/v1/schedules"): VIEW,
    ("GET", "/v1/schedules/{name:path}"): VIEW,
    ("DELETE", "/v1/schedules/{name:path}"): ADMIN,
    ("POST", "/v1/schedules/{name:path}/pause"): ADMIN,
    ("POST", "/v1/schedules/{name:path}/resume"): ADMIN,
    ("GET", "/v1/leader"): VIEW,
    # KV: shared state that task code reads and writes
    ("GET", "/v1/kv"): WORKER_VIEW,
    ("GET", "/v1/kv/{key:path}"): WORKER_VIEW,
    ("PUT", "/v1/kv/{key:path}"): WORKER,
    ("DELETE", "/v1/kv/{key:path}"): WORKER,
    ("POST", "/v1/kv/{key:path}/set-if-absent"): WORKER,
    ("POST", "/v1/kv/{key:path}/increment"): WORKER,
    # tokens
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens"): ADMIN,
    ("POST", "/v1/tokens/{name}/revoke"): ADMIN,
    # the studio: pages for viewers, actions for admins (signed session, see credentials.py)
    ("GET", "/studio/login"): PUBLIC,
    ("POST", "/studio/login"): PUBLIC,
    ("GET", "/studio/static/{name}"): PUBLIC,
    ("POST", "/studio/logout"): VIEW,
    ("GET", "/studio/events"): VIEW,
    ("POST", "/studio/tasks/{task_id}/cancel"): ADMIN,
    ("POST", "/studio/tasks/{task_id}/retry"): ADMIN,
    ("POST", "/studio/tasks/{task_id}/approve"): ADMIN,
    ("POST", "/studio/tasks/{task_id}/reject"): ADMIN,
    ("POST", "/studio/schedules/{name:path}/{action}"): ADMIN,
    ("POST", "/studio/queues/{name:path}/{action}"): ADMIN,
    ("POST", "/studio/definitions/send"): ADMIN,
    ("POST", "/studio/trees/{task_id}/cancel"): ADMIN,
    ("POST", "/studio/workflows/runs/{run_id}/cancel"): ADMIN,
    ("POST", "/studio/workflows/runs/{run_id}/rerun"): ADMIN,
    ("POST", "/studio/bulk/{action}"): ADMIN,
}
# Every other GET of the studio is a page or a partial: viewers may read them.
STUDIO_PAGE_PREFIX = "/studio"


def rule_of(method: str, path: str) -> Rule | None:
    method = "GET" if method == "HEAD" else method
    rule = RULES.get((method, path))
    if rule is None and method == "GET" and (
            path == STUDIO_PAGE_PREFIX or path.startswith(STUDIO_PAGE_PREFIX + "/")):
        return VIEW
    return rule


def allowed(caller: Caller | None, method: str, path: str) -> bool:
    """Whether ``caller`` may call the route declared as ``method path`` at all."""
    rule = rule_of(method, path)
    if isinstance(rule, Public):
        return True
    if caller is None:
        return False
    return caller.is_admin or (rule is not None and caller.role in rule)


async def authorize(request: Request) -> None:
    """The app-wide dependency: the route's rule against the caller the middleware found."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    caller: Caller | None = request.scope.get(CALLER)
    if caller is None and not isinstance(rule_of(request.method, path), Public):
        if path == STUDIO_PAGE_PREFIX or path.startswith(STUDIO_PAGE_PREFIX + "/"):
            return  # no session yet: the studio's guard sends the browser to its login form
        raise Forbidden(f"{request.method} {path} needs a token")
    if not allowed(caller, request.method, path):
        assert caller is not None
        raise Forbidden(f"a {caller.role} token may not call {request.method} {path}",
                        {"role": caller.role, "token": caller.name})


def caller_of(request: Request) -> Caller:
    return request.scope[CALLER]


# -- scopes ------------------------------------------------------------------------------------


def covers(pattern: str, requested: str) -> bool:
    """Whether every queue ``requested`` (a name or a glob) can match is matched by
    ``pattern``. A glob is covered by a pattern of ``*`` wildcards that matches its text
    (its wildcards then fall inside the pattern's); a pattern with ``?`` covers only itself."""
    if not is_glob(requested):
        return fnmatchcase(requested, pattern)
    if requested == pattern:
        return True
    return "?" not in pattern and fnmatchcase(requested, pattern)


def _covered(patterns: Iterable[str], requested: str) -> bool:
    return any(covers(p, requested) for p in patterns)


def _refuse(caller: Caller, what: str, value: str) -> Forbidden:
    return Forbidden(f"token {caller.name!r} ({caller.role}) is not allowed {what} {value!r}",
                     {"role": caller.role, "token": caller.name, what.split()[-1]: value})


def in_scope(caller: Caller, queue: str) -> bool:
    """Whether a worker's (or queue-limited sender's) patterns cover ``queue``."""
    if caller.is_admin or (not caller.queues and caller.role != "worker"):
        return True
    return _covered(caller.queues, queue)


def check_queues(caller: Caller, queues: Iterable[str]) -> None:
    """A worker's claim, registration or queue setting: every queue within its patterns."""
    if caller.is_admin:
        return
    for queue in queues:
        if not _covered(caller.queues, queue):
            raise _refuse(caller, "on queue", queue)


def check_task(caller: Caller, name: str, queue: str) -> None:
    """Sending or reading a task: within the caller's queue and (senders) name patterns."""
    if caller.is_admin or caller.role == "viewer":
        return
    if caller.role == "sender" and caller.names and not _covered(caller.names, name):
        raise _refuse(caller, "the task name", name)
    if (caller.role == "worker" or caller.queues) and not _covered(caller.queues, queue):
        raise _refuse(caller, "on queue", queue)


def check_sends(caller: Caller, tasks: Iterable[Any]) -> None:
    if caller.is_admin:
        return  # as check_task answers for each task, without the loop over a large batch
    for task in tasks:
        check_task(caller, task.name, task.queue)


def check_workflow(caller: Caller, name: str) -> None:
    """Starting or reading a run: a sender needs a name pattern matching the workflow (queue
    patterns alone do not say where a run's nodes go)."""
    if caller.is_admin or caller.role in ("viewer", "worker"):
        return
    if caller.queues and not caller.names:
        raise _refuse(caller, "the workflow", name)
    if caller.names and not _covered(caller.names, name):
        raise _refuse(caller, "the workflow", name)


def check_schedule_queues(caller: Caller, schedules: Iterable[Any]) -> None:
    """A worker registering its cron schedules: each lands in a queue it serves."""
    check_queues(caller, [s.options.queue or (DEFAULT_QUEUE if s.kind == "task" else "")
                          for s in schedules])

"""The one exception tree of the client. Every error it raises on purpose is a ``BranchworkError``.

::

    BranchworkError
    ├── DefinitionError          a task definition is wrong (duplicate name, bad cron, bad option)
    ├── InvalidArgs              arguments did not validate; raised by .send() before any request
    ├── InvalidValue             a value the server cannot store (NaN, a non-string key, nested
    │                            too deep...); raised before any request
    ├── ResultNotSerializable    a task returned something that is not JSON-able
    ├── TransportError           the server could not be reached (after the client's retries)
    ├── ApiError                 the server answered 4xx/5xx: .status .code .message .details
    │   ├── BadRequest           400 (malformed JSON, NUL characters)
    │   ├── Unauthorized         401 / 403 (missing or wrong BRANCHWORK_API_TOKEN)
    │   ├── NotFound             404
    │   ├── Conflict             409 (task already finished, stale lease, not an integer...)
    │   ├── PayloadTooLarge      413 (args, result or KV value over the server's limit)
    │   ├── ValidationError      422 (the body did not match the API schema)
    │   └── ServerError          5xx
    ├── TaskError                outcomes seen by ``TaskRun.wait()``: .task_id .task
    │   ├── TaskFailed           the task failed for good: .error_type .error_message .traceback
    │   ├── TaskCancelled        the task was cancelled (also raised by ctx.raise_if_cancelled())
    │   └── WaitTimeout          wait(timeout) ran out first; the task keeps running
    ├── WorkflowError            outcomes seen by ``WorkflowRun.wait()``: .run_id .run .reason
    │   ├── WorkflowFailed       a node failed for good: .node .task_id .error
    │   └── WorkflowCancelled    cancelled (API, cancel_workflow(), or its timeout: .reason)
    └── DurableError             durable tasks (docs/durable.md), raised inside the task
        ├── StepMismatch         a step name used with another function (or as another kind)
        └── WaitTimedOut         a durable wait's timeout ran out: .kind .key .step

(A durable wait that has to wait raises ``Suspend``, a ``BaseException`` outside this tree:
it ends the attempt, and the worker reports it suspended; see ``branchwork._durable``.)

(``WorkflowRun.wait(timeout)`` running out raises ``WaitTimeout`` too.)
"""

from __future__ import annotations

from typing import Any


class BranchworkError(Exception):
    """Base of every error the client raises on purpose."""


class DefinitionError(BranchworkError):
    """A task definition or registry is wrong; raised at import/definition time."""


class InvalidArgs(BranchworkError, ValueError):
    """Arguments did not validate against the task's signature; nothing was sent."""

    def __init__(self, task_name: str, errors: list[dict[str, Any]] | str) -> None:
        self.task_name = task_name
        self.errors = errors
        super().__init__(f"invalid arguments for task {task_name!r}: {errors}")


class InvalidValue(BranchworkError, ValueError):
    """A request would carry JSON the server cannot store (NaN or infinity, a non-string
    key, an integer beyond 64 bits, NUL, nesting past ``MAX_JSON_DEPTH``); nothing was sent."""


class ResultNotSerializable(BranchworkError, TypeError):
    """The task's return value cannot be stored as JSON."""


class TransportError(BranchworkError):
    """The server could not be reached, or the connection broke, after the client's retries.

    ``maybe_applied`` is True when the last failure happened after the request was written:
    the server may have acted on it. Sends made through a task definition are safe to repeat
    (they always carry an idempotency or spawn key), so this only matters for raw calls.
    """

    def __init__(self, message: str, *, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class ApiError(BranchworkError):
    """The server refused the request; its JSON error body is kept in the attributes."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{status} {code}: {message}")


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class ValidationError(ApiError):
    pass


class ServerError(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
}


def api_error(status: int, body: Any, text: str = "") -> ApiError:
    """Build the right ``ApiError`` subclass from a status and the server's JSON error body."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    if isinstance(body, dict) and "code" in body:
        return cls(status, str(body.get("code")), str(body.get("message", "")),
                   body.get("details"))
    return cls(status, "http_error", text[:1000] or f"HTTP {status}")


class TaskError(BranchworkError):
    """Base of the outcomes ``wait()`` reports as exceptions; ``task`` is the task as read."""

    def __init__(self, message: str, task_id: int, task: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.task = task


class TaskFailed(TaskError):
    """The task failed and has no retries left. The worker's error is in the attributes."""

    def __init__(self, task_id: int, task: dict[str, Any] | None = None) -> None:
        error = (task or {}).get("error") or {}
        self.error_type: str = error.get("type") or "Error"
        self.error_message: str = error.get("message") or ""
        self.traceback: str | None = error.get("traceback")
        self.attempts: int | None = (task or {}).get("attempts")
        super().__init__(f"task {task_id} failed: {self.error_type}: {self.error_message}",
                         task_id, task)


class TaskCancelled(TaskError):
    """The task was cancelled before it finished."""

    def __init__(self, task_id: int, task: dict[str, Any] | None = None,
                 message: str | None = None) -> None:
        super().__init__(message or f"task {task_id} was cancelled", task_id, task)


class WaitTimeout(TaskError, TimeoutError):
    """``wait(timeout)`` ran out before the task finished; the task itself goes on."""

    def __init__(self, task_id: int, timeout: float, status: str | None,
                 task: dict[str, Any] | None = None) -> None:
        self.timeout = timeout
        self.status = status
        super().__init__(f"task {task_id} still {status} after {timeout}s", task_id, task)


class WorkflowError(BranchworkError):
    """Base of the outcomes ``WorkflowRun.wait()`` reports; ``run`` is the run as last read."""

    def __init__(self, message: str, run_id: int, run: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.run = run or {}
        self.reason: str | None = self.run.get("reason")


class WorkflowFailed(WorkflowError):
    """A node failed for good; its downstream nodes were skipped."""

    def __init__(self, run_id: int, run: dict[str, Any] | None = None) -> None:
        error = (run or {}).get("error") or {}
        self.node: str | None = error.get("node")
        self.task_id: int | None = error.get("task_id")
        self.error: dict[str, Any] = error.get("error") or {}
        super().__init__(f"workflow run {run_id} failed at node {self.node}: "
                         f"{self.error.get('type')}: {self.error.get('message')}", run_id, run)


class WorkflowCancelled(WorkflowError):
    """The run was cancelled: through the API, by ``cancel_workflow()`` or by its timeout."""

    def __init__(self, run_id: int, run: dict[str, Any] | None = None,
                 message: str | None = None) -> None:
        reason = (run or {}).get("reason")
        super().__init__(message or f"workflow run {run_id} was cancelled ({reason})",
                         run_id, run)


class DurableError(BranchworkError):
    """Base of what a durable task's replay raises inside the task (docs/durable.md)."""


class StepMismatch(DurableError):
    """A step name was used with another function than the one recorded under it, in this
    run or an earlier one: the task's code is not deterministic, and replaying it is unsafe."""


class WaitTimedOut(DurableError, TimeoutError):
    """A durable wait (event, signal, approval…) ran past its timeout; the task resumed."""

    def __init__(self, kind: str, key: str | None, step: str,
                 timeout: float | None = None) -> None:
        self.kind = kind
        self.key = key
        self.step = step
        self.timeout = timeout
        what = f"{kind} {key!r}" if key is not None else kind
        after = f" after {timeout} s" if timeout is not None else ""
        super().__init__(f"the wait for {what} (step {step!r}) timed out{after}")

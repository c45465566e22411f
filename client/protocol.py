"""The wire protocol's rules, written once.

The client checks a send before it leaves the process, the worker checks its queue selector
before it starts, and the server builds its request schemas from the same constants, so the
three can never disagree about what a name, a limit or a status is. This module imports
nothing from the server (the HTTP API is the contract between them) and nothing beyond the
standard library, so ``pip install branchwork`` carries it without any server dependency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final, Literal

# -- names -----------------------------------------------------------------------------------

TASK_NAME_PATTERN: Final = r"^[A-Za-z_][\w.:\-/]*$"
QUEUE_NAME_PATTERN: Final = r"^[\w][\w.:\-/]*$"
# A claim's queue selector: a name, or a glob with ``*`` and ``?`` only (they map onto SQL
# LIKE; ``[...]`` classes do not).
QUEUE_SELECTOR_PATTERN: Final = r"^[\w*?][\w.:\-/*?]*$"
# Free text that is printed and used as a path segment: no control characters.
LABEL_PATTERN: Final = r"^[^\x00-\x1f]+$"
# Idempotency keys, spawn keys, KV and channel keys: anything but NUL.
KEY_PATTERN: Final = r"^[^\x00]+$"

TASK_NAME_MAX: Final = 200
QUEUE_NAME_MAX: Final = 100
WORKER_ID_MAX: Final = 200
SCHEDULE_NAME_MAX: Final = 200
KEY_MAX: Final = 512

# Access tokens (docs/operations.md, "Tokens"): a name, a role, and for the scoped roles the
# queue and task-name patterns (globs, as in a claim's queue selector) they are limited to.
TOKEN_NAME_PATTERN: Final = r"^[A-Za-z0-9_][\w.:\-]*$"
TOKEN_NAME_MAX: Final = 100
TokenRole = Literal["admin", "worker", "sender", "viewer"]
TOKEN_ROLES: Final[tuple[TokenRole, ...]] = ("admin", "worker", "sender", "viewer")
MAX_TOKEN_PATTERNS: Final = 100

# Flow control (docs/flow-control.md): named rate limits, concurrency-key strategies, and
# the dotted path into a task's args a key may be read from ("customer.id").
RATE_LIMIT_NAME_PATTERN: Final = r"^[A-Za-z0-9_][\w.:\-]*$"
RATE_LIMIT_NAME_MAX: Final = 100
KEY_PATH_PATTERN: Final = r"^[^.\x00]+(\.[^.\x00]+)*$"
KEY_PATH_MAX: Final = 200
ConcurrencyStrategy = Literal["fair", "cancel_in_progress", "cancel_newest"]
CONCURRENCY_STRATEGIES: Final[tuple[ConcurrencyStrategy, ...]] = (
    "fair", "cancel_in_progress", "cancel_newest")
MAX_RATE_LIMITS_PER_TASK: Final = 10
MAX_RATE_UNITS: Final = 1_000_000



def flow_problem(task: Mapping[str, object]) -> str | None:
    """What is wrong with a send's flow-control options, or None (the client and the server
    both ask; docs/flow-control.md)."""
    if task.get("concurrency_key") is not None and task.get("concurrency_key_path") is not None:
        return "give concurrency_key or concurrency_key_path, not both"
    keyed = task.get("concurrency_key") is not None or task.get("concurrency_key_path") is not None
    if not keyed and (task.get("concurrency_limit") is not None
                      or task.get("concurrency_strategy") is not None):
        return "concurrency_limit and concurrency_strategy need a concurrency key"
    return None


TASK_NAME: Final = re.compile(TASK_NAME_PATTERN)
QUEUE_NAME: Final = re.compile(QUEUE_NAME_PATTERN)
QUEUE_SELECTOR: Final = re.compile(QUEUE_SELECTOR_PATTERN)

# -- limits ----------------------------------------------------------------------------------

MIN_PRIORITY: Final = 1
MAX_PRIORITY: Final = 10
DEFAULT_PRIORITY: Final = 5
DEFAULT_QUEUE: Final = "default"
MAX_RETRIES: Final = 1000
MAX_SECONDS: Final = 31_536_000.0  # one year: delays, timeouts, backoff
MAX_TASK_ID: Final = 2**63 - 1
MAX_WORKFLOW_NODES: Final = 1000
MAX_TREE_NODES: Final = 10_000
MAX_VALUE_BYTES: Final = 1_048_576  # one KV value or channel value, UTF-8 JSON
# How deep a JSON request body may nest (its own object or array is level 1): far below
# what every reader can encode again (orjson stops at 254), so what is stored can be read.
MAX_JSON_DEPTH: Final = 64
MAX_WORKER_INFO_BYTES: Final = 65_536  # a worker's ``info`` object, UTF-8 JSON
MAX_NODE_CYCLES: Final = 100_000  # how often one node may run in one workflow run
MAX_CONCURRENCY_LIMIT: Final = 1_000_000
MAX_CLAIM_LIMIT: Final = 1000  # tasks leased by one claim
MAX_LEASES_PER_CALL: Final = 10_000  # leases in one heartbeat or release
MAX_WAIT_SECONDS: Final = 3600.0  # one long-poll (claim, tree wait, run wait)
# Streams (docs/streaming.md): one chunk, all chunks of one task (UTF-8 bytes), one batch.
MAX_STREAM_CHUNK_BYTES: Final = 65_536
MAX_STREAM_TASK_BYTES: Final = 16_777_216
MAX_STREAM_BATCH: Final = 1000
MAX_PROGRESS_MESSAGE: Final = 1000  # characters of a progress message

# -- statuses --------------------------------------------------------------------------------

# ``waiting``: a durable task suspended on an event, a signal, an approval or its children,
# holding no lease and no worker (docs/durable.md); a durable sleep is ``queued`` until due.
TaskStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]
TASK_STATUSES: Final[tuple[TaskStatus, ...]] = (
    "queued", "running", "waiting", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES: Final[tuple[TaskStatus, ...]] = ("queued", "running", "waiting")
TERMINAL_STATUSES: Final[tuple[TaskStatus, ...]] = ("succeeded", "failed", "cancelled")
RETRY_BACKOFFS: Final = ("fixed", "linear", "exponential")
# What happens to an attempt silent past its stuck_after: shown stuck, or also failed as
# ``Stuck`` and retried per its policy (docs/operations.md, "Stuck tasks").
StuckAction = Literal["mark", "fail"]
STUCK_ACTIONS: Final[tuple[StuckAction, ...]] = ("mark", "fail")

# What a worker reports for one attempt, and the server's verdict on each reported item.
# ``suspended``: the attempt ends waiting (its ``wait`` says for what); it spends no retry.
AttemptOutcome = Literal["succeeded", "failed", "cancelled", "suspended"]
SUSPENDED: Final = "suspended"
APPLIED: Final = "applied"
# Verdicts that mean "the outcome is stored" (a repeat of a stored report is already_recorded).
RECORDED_VERDICTS: Final = frozenset({"applied", "already_recorded"})

# -- error codes (the ``error.code`` of every JSON error body) --------------------------------

STALE_LEASE: Final = "stale_lease"
ALREADY_RECORDED: Final = "already_recorded"
NOT_FOUND: Final = "not_found"
VALIDATION_ERROR: Final = "validation_error"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
UNAUTHORIZED: Final = "unauthorized"
DATABASE_UNAVAILABLE: Final = "database_unavailable"
NOT_WAITING: Final = "not_waiting"  # a signal to a task not waiting for it
STEP_CONFLICT: Final = "step_conflict"  # a step name recorded with another function
ALREADY_DECIDED: Final = "already_decided"  # an approval decided twice
NOT_WAITING_FOR_APPROVAL: Final = "not_waiting_for_approval"  # approve/reject a task not asking

# -- durable tasks (docs/durable.md) ---------------------------------------------------------

# What a suspended attempt waits for. ``sleep`` queues the task again at its ``until``; the
# others leave it ``waiting`` until ``POST /v1/events``, a signal, an approval or its
# children resume it, or its timeout does.
WAIT_KINDS: Final = ("sleep", "event", "signal", "approval", "children")
# What a stored step is: a ``ctx.step`` result, or a finished sleep or wait.
STEP_KINDS: Final = ("step", *WAIT_KINDS)
STEP_NAME_MAX: Final = 600  # a step's stored name: "event:" + a key + its "#n" suffix
FN_NAME_MAX: Final = 1000  # a step's function, as module.qualname
MAX_LOOKBACK_SECONDS: Final = 86_400.0  # how far back a wait for an event may look
MAX_COMMENT: Final = 10_000  # characters of an approval's comment


def is_task_name(text: object) -> bool:
    return isinstance(text, str) and len(text) <= TASK_NAME_MAX and bool(TASK_NAME.match(text))


def is_queue_name(text: object) -> bool:
    return (isinstance(text, str) and len(text) <= QUEUE_NAME_MAX
            and bool(QUEUE_NAME.match(text)))


# -- the queue selector ----------------------------------------------------------------------


def is_glob(name: str) -> bool:
    """A queue name with glob characters is a pattern, not a name."""
    return any(ch in name for ch in "*?[")


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches exactly it (backslash is LIKE's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """A ``*``/``?`` glob as the LIKE pattern that matches the same names."""
    return escape_like(pattern).replace("*", "%").replace("?", "_")


@dataclass(frozen=True, slots=True)
class QueueSelector:
    """What a claim serves: exact queue names and globs, parsed once.

    The worker builds one to refuse a bad ``--queue`` at start; the server builds one per
    claim (matching for wake-ups, LIKE patterns for SQL)."""

    exact: frozenset[str]
    globs: tuple[str, ...]

    @classmethod
    def parse(cls, queues: Iterable[str]) -> QueueSelector:
        names = list(queues)
        for q in names:
            check_queue_selector(q)
        return cls(frozenset(q for q in names if not is_glob(q)),
                   tuple(dict.fromkeys(q for q in names if is_glob(q))))

    def matches(self, queue: str) -> bool:
        return queue in self.exact or any(fnmatchcase(queue, g) for g in self.globs)

    @property
    def like_patterns(self) -> list[str]:
        return [glob_to_like(g) for g in self.globs]


def check_queue_selector(text: object) -> str:
    """A queue name or glob the server accepts; ``ValueError`` otherwise."""
    if (not isinstance(text, str) or len(text) > QUEUE_NAME_MAX
            or not QUEUE_SELECTOR.match(text)):
        raise ValueError(f"invalid queue {text!r}: letters, digits and . : - / _, with * and ? "
                         f"as wildcards, at most {QUEUE_NAME_MAX} characters")
    return text


# -- workflows -------------------------------------------------------------------------------


def find_cycle(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> bool:
    """True when ``edges`` over ``nodes`` form a cycle (Kahn's algorithm)."""
    down: dict[str, list[str]] = {n: [] for n in nodes}
    indegree: dict[str, int] = dict.fromkeys(nodes, 0)
    for src, dst in edges:
        down[src].append(dst)
        indegree[dst] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for nxt in down[n]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return seen != len(indegree)


def dag_problem(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> str | None:
    """Why ``nodes``/``edges`` are not a workflow DAG, or None: duplicate or unknown node
    names, self-loops, cycles. The client says it at definition, the server at registration."""
    seen: set[str] = set()
    for n in nodes:
        if n in seen:
            return f"node {n!r} appears twice"
        seen.add(n)
    edge_list = list(edges)
    for src, dst in edge_list:
        for end in (src, dst):
            if end not in seen:
                return f"edge names unknown node {end!r}"
        if src == dst:
            return f"node {src!r} cannot follow itself"
    if find_cycle(list(nodes), edge_list):
        return "its edges form a cycle"
    return None


def upstream_map(nodes: Sequence[str],
                 edges: Iterable[tuple[str, str]]) -> Mapping[str, list[str]]:
    """Each node's direct predecessors, in edge order."""
    up: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        up[dst].append(src)
    return up


# -- send windows (docs/flow-control.md: debounce, expiring and while-active keys) ------------

UNIQUE_WHILE: Final = ("active",)


# Every rule of ``send_window_problem`` needs one of these set; most sends set none.
SEND_WINDOW_FIELDS: Final = ("unique_for", "unique_while", "debounce_seconds", "debounce_key",
                             "debounce_key_path", "debounce_max_seconds")


def send_window_problem(body: Mapping[str, object]) -> str | None:
    """Why a send body's debounce and uniqueness fields do not fit together, or None. The
    server refuses such a send (422); the client says it before sending."""
    if all(body.get(k) is None for k in SEND_WINDOW_FIELDS):
        return None  # checked per task of a batch: the common case costs six lookups
    given = {k for k, v in body.items() if v is not None}
    if {"unique_for", "unique_while"} <= given:
        return "give unique_for or unique_while, not both"
    if given & {"unique_for", "unique_while"} and "idempotency_key" not in given:
        return "unique_for and unique_while shape an idempotency_key: give one"
    keys = given & {"debounce_key", "debounce_key_path", "debounce_max_seconds"}
    if "debounce_seconds" not in given:
        return f"{sorted(keys)[0]} needs debounce_seconds" if keys else None
    keys.discard("debounce_max_seconds")
    if len(keys) != 1:
        return "a debounced send needs debounce_key or debounce_key_path (one of them)"
    clash = sorted(given & {"idempotency_key", "spawn_key", "delay_seconds", "run_at"})
    if clash:
        return (f"debounce_seconds cannot be combined with {clash[0]}: the window sets when "
                "the task runs, and its key finds the task")
    return None

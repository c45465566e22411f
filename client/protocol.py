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

# -- statuses --------------------------------------------------------------------------------

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TASK_STATUSES: Final[tuple[TaskStatus, ...]] = (
    "queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES: Final[tuple[TaskStatus, ...]] = ("queued", "running")
TERMINAL_STATUSES: Final[tuple[TaskStatus, ...]] = ("succeeded", "failed", "cancelled")
RETRY_BACKOFFS: Final = ("fixed", "linear", "exponential")
# What happens to an attempt silent past its stuck_after: shown stuck, or also failed as
# ``Stuck`` and retried per its policy (docs/operations.md, "Stuck tasks").
StuckAction = Literal["mark", "fail"]
STUCK_ACTIONS: Final[tuple[StuckAction, ...]] = ("mark", "fail")

# What a worker reports for one attempt, and the server's verdict on each reported item.
AttemptOutcome = Literal["succeeded", "failed", "cancelled"]
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

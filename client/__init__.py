"""Branchwork's Python client: define tasks, send them, wait for results, use the KV store.

The public surface is re-exported here; the modules behind it are private (``_*.py``).
Exceptions: see ``branchwork._exceptions`` for the one tree rooted at ``BranchworkError``.
Public modules beside it: ``branchwork.protocol`` (the wire protocol's rules),
``branchwork.worker_api`` (what a worker runtime uses) and ``branchwork.cli`` (the command).
"""

from ._config import configure
from ._context import TaskContext, get_context, reset_context, set_context, task_context
from ._dsl import Node, node
from ._exceptions import (
    ApiError,
    BadRequest,
    BranchworkError,
    Conflict,
    DefinitionError,
    DurableError,
    InvalidArgs,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    ResultNotSerializable,
    ServerError,
    StepMismatch,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TransportError,
    Unauthorized,
    ValidationError,
    WaitTimedOut,
    WaitTimeout,
    WorkflowCancelled,
    WorkflowError,
    WorkflowFailed,
)
from ._handle import TaskRun
from ._http import AsyncClient, Client
from ._kv import KV, KVStore
from ._limits import ConcurrencyKey, RateLimit, RateLimitUse
from ._options import Queue
from ._people import ApprovalDecision
from ._registry import Registry
from ._request import TaskRequest, asend_batch, send_batch
from ._settings import ClientSettings
from ._stream import StreamEvent
from ._task import ConfiguredTask, TaskDefinition
from ._trees import (
    acancel_tree,
    aget_tree,
    await_all,
    await_tree,
    awaiting,
    cancel_tree,
    get_tree,
    list_roots,
    wait_all,
    wait_tree,
    waiting,
)
from ._windows import Debounce
from ._workflow import ConfiguredWorkflow, Workflow
from ._workflow_context import (
    DurableRuns,
    NodeRun,
    RunOutcome,
    WorkflowContext,
    get_workflow_context,
)
from ._workflow_run import Channel, WorkflowRun

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 (grouped: client, then trees and workflows)
    "KV",
    "ApiError",
    "ApprovalDecision",
    "AsyncClient",
    "BadRequest",
    "BranchworkError",
    "Client",
    "ClientSettings",
    "ConfiguredTask",
    "Conflict",
    "DefinitionError",
    "DurableError",
    "InvalidArgs",
    "InvalidValue",
    "KVStore",
    "NotFound",
    "PayloadTooLarge",
    "Queue",
    "RateLimit",
    "RateLimitUse",
    "ConcurrencyKey",
    "Debounce",
    "Registry",
    "ResultNotSerializable",
    "ServerError",
    "StepMismatch",
    "TaskCancelled",
    "TaskContext",
    "TaskDefinition",
    "TaskError",
    "TaskFailed",
    "TaskRequest",
    "TaskRun",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "WaitTimedOut",
    "WaitTimeout",
    "asend_batch",
    "configure",
    "get_context",
    "reset_context",
    "send_batch",
    "set_context",
    "task_context",
    # task trees and workflows (_trees.py, _workflow.py)
    "Channel",
    "DurableRuns",
    "NodeRun",
    "RunOutcome",
    "StreamEvent",
    "ConfiguredWorkflow",
    "Node",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowRun",
    "acancel_tree",
    "aget_tree",
    "await_all",
    "await_tree",
    "awaiting",
    "cancel_tree",
    "get_tree",
    "get_workflow_context",
    "list_roots",
    "node",
    "wait_all",
    "wait_tree",
    "waiting",
]

"""Branchwork's Python client: define tasks, send them, wait for results, use the KV store.

The public surface is re-exported here; the modules behind it are private (``_*.py``).
Exceptions: see ``branchwork._exceptions`` for the one tree rooted at ``BranchworkError``.
"""

from ._config import ClientSettings, configure
from ._context import TaskContext, get_context, reset_context, set_context, task_context
from ._exceptions import (
    ApiError,
    BadRequest,
    BranchworkError,
    Conflict,
    DefinitionError,
    InvalidArgs,
    NotFound,
    PayloadTooLarge,
    ResultNotSerializable,
    ServerError,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TransportError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from ._handle import TaskRun
from ._http import AsyncClient, Client
from ._kv import KV, KVStore
from ._registry import Registry
from ._task import (
    ConfiguredTask,
    Queue,
    TaskDefinition,
    TaskRequest,
    asend_batch,
    send_batch,
)
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
from ._workflow import (
    Channel,
    ConfiguredWorkflow,
    Node,
    Workflow,
    WorkflowCancelled,
    WorkflowContext,
    WorkflowError,
    WorkflowFailed,
    WorkflowRun,
    get_workflow_context,
    node,
)

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 (grouped: client, then trees and workflows)
    "KV",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BranchworkError",
    "Client",
    "ClientSettings",
    "ConfiguredTask",
    "Conflict",
    "DefinitionError",
    "InvalidArgs",
    "KVStore",
    "NotFound",
    "PayloadTooLarge",
    "Queue",
    "Registry",
    "ResultNotSerializable",
    "ServerError",
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

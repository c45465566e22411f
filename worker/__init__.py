"""The Python worker runtime: ``branchwork run-worker module:registry``, or in code::

    from branchwork.worker import WorkerOptions, run
    run(registry, WorkerOptions(spec="myapp.tasks:registry", url="http://127.0.0.1:8000"))

``spec`` is how task processes find the registry again. See docs/worker.md.
Exports are loaded lazily so that the heartbeat and task processes start light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Worker", "WorkerOptions", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(name)

"""Wires orchestration into the app: tree, workflow and schedule routes; the workflow
advancer, leader elector and cron scheduler as lifespan services (started only with
``run_services``, stopped in reverse order); the rescuer's hooks (workflow advance, metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..api import schedules, trees, workflows
from ..metrics import MetricsContext, current, sweep_hook
from .leader import LeaderElector
from .scheduler import Scheduler
from .workflow_advancer import WorkflowAdvancer


def install(app: FastAPI) -> None:
    for module in (trees, workflows, schedules):
        app.include_router(module.router)
    started: list[Any] = []
    # Tasks the store creates itself (workflow nodes, cron fires) count in sent_total.
    app.add_middleware(MetricsContext, metrics=app.state.metrics)

    async def startup(app: FastAPI) -> None:
        settings = app.state.settings
        pool = app.state.pool
        current.set(app.state.metrics)  # inherited by the services started below
        elector = LeaderElector(pool, settings.leader_lease_seconds)
        advancer = WorkflowAdvancer(pool, settings.workflow_interval_seconds)
        scheduler = Scheduler(pool, elector, settings.scheduler_interval_seconds)
        app.state.leader = elector
        app.state.workflow_advancer = advancer
        app.state.scheduler = scheduler
        rescuer = getattr(app.state, "rescuer", None)
        if rescuer is not None:
            rescuer.hooks.append(advancer.on_sweep)
            # Outcomes the sweep decides (lease ran out, timeout) count in /metrics too.
            rescuer.hooks.append(sweep_hook(pool, app.state.metrics))
        if settings.run_services:
            for service in (elector, advancer, scheduler):
                service.start()
                started.append(service)

    async def shutdown(app: FastAPI) -> None:
        while started:
            await started.pop().stop()

    app.state.startup_hooks.append(startup)
    app.state.shutdown_hooks.append(shutdown)

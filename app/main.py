"""The FastAPI application: the composition root.

Everything is wired here and only here: the routers (one list), the one server state (built
by the lifespan, stored as ``app.state.server``), and the background services (one list,
started in order, stopped in reverse). Layers below never reach back up: services and the
engine get the state or its parts handed to them, and import no routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from ..studio import routes as studio
from . import migrate
from . import openapi as api_document
from .access import authorize
from .api import (
    approvals,
    bulk,
    events,
    health,
    kv,
    limits,
    metrics,
    queues,
    schedules,
    streams,
    tasks,
    tokens,
    trees,
    workers,
    workflows,
)
from .database import resolve_database_url, stop_embedded
from .engine.sweep import count_swept
from .errors import install_error_handlers
from .jsonutil import JsonResponse
from .metrics import Metrics
from .notifier import Notifier
from .security import GuardMiddleware
from .services.children import ChildrenSweeper
from .services.leader import LeaderElector
from .services.rescuer import Rescuer
from .services.retention import RetentionService
from .services.scheduler import Scheduler
from .services.stuck import StuckSweeper
from .services.waits import WaitTimer
from .services.workflow_advancer import WorkflowAdvancer
from .settings import Settings, get_settings
from .state import ServerState, Service
from .store.pool import open_pool

log = logging.getLogger("branchwork")

# Every router of the service, in the order they are matched. The worker protocol comes
# first: FastAPI tries each router's routes in turn on every request, and claims and reports
# are most of the requests (no two routers share a method and path, so order decides nothing
# else; the 405 ``Allow`` header is built from every route, app/errors.py).
ROUTERS: tuple[APIRouter, ...] = (
    workers.router, tasks.router, trees.router, workflows.router, schedules.router,
    approvals.router, health.router, queues.router, kv.router, metrics.router,
    tokens.router, streams.router, bulk.router, events.router, limits.router,
    studio.router,
)

STUDIO_OBSERVE_SECONDS = 0.5
# The children sweeper reads every child of every waiting durable parent: not too often.
CHILDREN_SWEEP_SECONDS = 5.0


def build_services(state: ServerState) -> list[Service]:
    """The background services in start order (they stop in reverse). The rescuer, leader
    elector, workflow advancer and cron scheduler run only with ``run_services``; the
    studio's change observer always (it serves this replica's open pages)."""
    settings, pool = state.settings, state.pool
    services: list[Service] = []
    if settings.run_services:
        rescuer = Rescuer(pool, settings.sweep_interval_seconds)
        elector = LeaderElector(pool, settings.leader_lease_seconds)
        advancer = WorkflowAdvancer(pool, settings.workflow_interval_seconds, state.metrics)
        scheduler = Scheduler(pool, elector, settings.scheduler_interval_seconds, state.metrics)
        # Node tasks a sweep ended advance their runs; the attempts it ended count in /metrics.
        rescuer.hooks += [advancer.on_sweep, count_swept(pool, state.metrics)]
        # Stuck attempts it fails are ended like swept ones: the same hooks apply. Progress
        # arrives with heartbeats (every lease / 3), so looking more often finds nothing new.
        stuck = StuckSweeper(pool, max(settings.sweep_interval_seconds,
                                       settings.lease_seconds / 3), rescuer.hooks)
        services += [rescuer, stuck, elector, advancer, scheduler]
        # Durable waits past their timeout resume; old events are forgotten.
        services.append(WaitTimer(pool, settings.wait_interval_seconds,
                                  settings.event_retention_seconds))
        # Parents whose children finished outside a report (cancelled, rescued) resume.
        services.append(ChildrenSweeper(pool, max(settings.wait_interval_seconds,
                                                  CHILDREN_SWEEP_SECONDS)))
        # Finished tasks, runs and expired KV entries past their retention, in batches.
        services.append(RetentionService(pool, settings))
    state.studio = studio.Studio(pool, STUDIO_OBSERVE_SECONDS)
    services.append(state.studio.observer)
    services.append(state.tokens)  # its last-use writes finish before the pool closes
    return services


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()  # per app: several apps may share a process (tests)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await asyncio.to_thread(resolve_database_url, settings.database_url,
                                      settings.data_dir)
        if settings.run_migrations:
            await asyncio.to_thread(migrate.upgrade, url)
        pool = await open_pool(url, settings.pool_min_size, settings.pool_max_size,
                               session=settings.database_session())
        notifier = Notifier(url)
        await notifier.start()
        state = ServerState(settings=settings, database_url=url, pool=pool,
                            notifier=notifier, metrics=metrics)
        state.services = build_services(state)
        app.state.server = state
        state.start_services()
        try:
            yield
        finally:
            await state.stop_services()
            await notifier.stop()
            await pool.close()
            if settings.database_url is None:  # only the PostgreSQL this app started
                await asyncio.to_thread(stop_embedded)

    app = api_document.offline_app(
        title="Branchwork",
        version="0.1.0",
        summary="Task orchestration on PostgreSQL",
        default_response_class=JsonResponse,
        lifespan=lifespan,
        # Every route's rule (app/access.py) against the caller the middleware found.
        dependencies=[Depends(authorize)],
    )
    install_error_handlers(app)

    async def need_login(request: Request, _: Exception) -> Response:
        return studio.login_redirect(request)

    app.add_exception_handler(studio.LoginRequired, need_login)
    for router in ROUTERS:
        app.include_router(router)
    api_document.install(app)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/studio")

    app.add_middleware(GuardMiddleware, max_body=settings.max_request_bytes)
    return app

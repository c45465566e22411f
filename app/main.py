"""The FastAPI application: lifespan wiring of database, migrations, notifier and services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from ..studio.routes import install as install_studio
from . import migrate
from . import openapi as api_document
from .api import health, kv, metrics, queues, tasks, workers
from .database import resolve_database_url, stop_embedded
from .errors import install_error_handlers
from .jsonutil import JsonResponse
from .metrics import Metrics
from .notifier import Notifier
from .security import GuardMiddleware
from .services import orchestration
from .services.rescuer import Rescuer
from .settings import Settings, get_settings
from .store.pool import open_pool
from .store.queues import KnownQueues

log = logging.getLogger("branchwork")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await asyncio.to_thread(resolve_database_url, settings.database_url,
                                      settings.data_dir)
        if settings.run_migrations:
            await asyncio.to_thread(migrate.upgrade, url)
        pool = await open_pool(url, settings.pool_min_size, settings.pool_max_size)
        notifier = Notifier(url)
        await notifier.start()
        rescuer = Rescuer(pool, settings.sweep_interval_seconds)
        app.state.pool = pool
        app.state.notifier = notifier
        app.state.rescuer = rescuer
        app.state.known_queues = KnownQueues()
        app.state.database_url = url
        services = [rescuer]
        for hook in app.state.startup_hooks:
            await hook(app)
        if settings.run_services:
            for service in services:
                service.start()
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                await hook(app)
            for service in services:
                await service.stop()
            await notifier.stop()
            await pool.close()
            if settings.database_url is None:  # only the PostgreSQL this app started
                await asyncio.to_thread(stop_embedded)

    app = FastAPI(
        title="Branchwork",
        version="0.1.0",
        summary="Task orchestration on PostgreSQL",
        default_response_class=JsonResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    app.state.metrics = Metrics()
    install_error_handlers(app)
    orchestration.install(app)  # trees, workflows, cron: routes and services
    for module in (health, tasks, workers, queues, kv, metrics):
        app.include_router(module.router)
    install_studio(app)
    api_document.install(app)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/studio")

    app.add_middleware(GuardMiddleware, api_token=settings.api_token,
                       max_body=settings.max_request_bytes)
    return app

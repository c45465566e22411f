"""The server state's service order, the one paging rule and the one error table (no database)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from branchwork.app.engine import errors
from branchwork.app.errors import status_of
from branchwork.app.metrics import Metrics
from branchwork.app.read.paging import page_of
from branchwork.app.settings import Settings
from branchwork.app.state import ServerState


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def state(**kw: Any) -> ServerState:
    notifier: Any = SimpleNamespace(config_listeners=[])
    return ServerState(settings=Settings(), database_url="postgresql://x", pool=None,  # type: ignore[arg-type]
                       notifier=notifier, metrics=Metrics(), **kw)


async def test_services_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    s = state()
    s.services = [Recorder(n, log) for n in ("rescuer", "elector", "advancer")]
    s.start_services()
    await s.stop_services()
    await s.stop_services()  # a second stop stops nothing twice
    assert log == ["start rescuer", "start elector", "start advancer",
                   "stop advancer", "stop elector", "stop rescuer"]


def test_queue_settings_cache_is_dropped_on_a_config_notification() -> None:
    s = state()
    assert s.caches.queue_settings.invalidate in s.notifier.config_listeners


def test_a_full_page_points_past_its_last_row_and_a_short_one_ends() -> None:
    rows = [{"id": 9}, {"id": 7}, {"id": 4}]
    assert page_of(rows, 3, lambda r: r["id"]).next_cursor == 4
    assert page_of(rows, 4, lambda r: r["id"]).next_cursor is None
    assert page_of([], 3, lambda r: r["id"]).next_cursor is None


def test_each_domain_error_has_its_status() -> None:
    assert status_of(errors.NotFound.of("task", 1)) == 404
    assert status_of(errors.InvalidInput("x", code="unknown_parent")) == 422
    assert status_of(errors.Conflict("x", code="already_finished")) == 409
    assert status_of(errors.StaleLease("x")) == 409
    assert status_of(errors.AlreadyRecorded("x")) == 409
    assert status_of(errors.PayloadTooLarge("x", code="batch_too_large")) == 413

    class Unlisted(errors.Conflict):
        pass

    assert status_of(Unlisted("x")) == 409  # a subclass takes its base's status
    assert status_of(errors.DomainError("x")) == 400

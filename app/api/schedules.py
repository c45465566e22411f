"""Cron schedules over HTTP (create, list, pause, resume, remove) and the leader lease."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from fastapi import APIRouter, Path
from pydantic import Field, StrictBool, field_validator

from ...protocol import LABEL_PATTERN, SCHEDULE_NAME_MAX
from .. import access
from ..engine import schedules as engine
from ..jsonutil import StrictJsonRoute
from ..read import schedules as read
from ..services.leader import LeaderElector
from .answers import LeaderOut, ScheduleDeletedOut, ScheduleOut, SchedulesOut
from .deps import CallerDep, Server
from .schemas import Seconds, Strict, TaskName
from .workflows import TaskOptions

router = APIRouter(prefix="/v1", tags=["schedules"], route_class=StrictJsonRoute)

# Names may hold "/" (task names do): the routes take the rest of the path.
ScheduleName = Annotated[str, Path(min_length=1, max_length=SCHEDULE_NAME_MAX,
                                   pattern=LABEL_PATTERN)]


def check_cron(expr: str) -> str:
    """Five fields (minute ... weekday), or six with seconds last, as croniter reads them."""
    if len(expr.split()) not in (5, 6) or not croniter.is_valid(expr):
        raise ValueError(f"{expr!r} is not a valid cron expression")
    try:
        # Valid syntax can still name no real date ("0 0 31 2 *"): croniter finds that out
        # only when asked for a fire time, which the store does after this check.
        croniter(expr, datetime.now(UTC)).get_next(datetime)
    except CroniterError as exc:
        raise ValueError(f"{expr!r} never fires (no such date)") from exc
    return expr


class ScheduleIn(Strict):
    kind: Literal["task", "workflow"] = "task"
    target: TaskName
    cron: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: Annotated[str, Field(min_length=1, max_length=100)] = "UTC"
    args: Any = None
    options: TaskOptions = TaskOptions()
    misfire: Literal["skip", "catch_up"] = "skip"
    grace_seconds: Seconds = 60.0
    paused: StrictBool | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # OSError: a folder of the zone database ("America") is no zone.
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class NamedScheduleIn(ScheduleIn):
    name: Annotated[str, Field(min_length=1, max_length=SCHEDULE_NAME_MAX, pattern=LABEL_PATTERN)]


class ScheduleBatchIn(Strict):
    schedules: Annotated[list[NamedScheduleIn], Field(max_length=10_000)]


def _spec(name: str, body: ScheduleIn, source: str) -> dict[str, Any]:
    return {"name": name, "kind": body.kind, "target": body.target, "cron": body.cron,
            "timezone": body.timezone, "args": body.args,
            "options": body.options.model_dump(exclude_none=True), "misfire": body.misfire,
            "grace_seconds": body.grace_seconds, "paused": body.paused, "source": source}


@router.put("/schedules/{name:path}", response_model=ScheduleOut,
            summary="Create or update a schedule")
async def put_schedule(name: ScheduleName, body: ScheduleIn, server: Server) -> Any:
    """Create a schedule, or replace the one of that name; answers it with its next fire time."""
    return await engine.upsert(server, _spec(name, body, "api"))


@router.post("/schedules/register", response_model=SchedulesOut,
             summary="A worker's schedules, upserted at its start")
async def register_schedules(body: ScheduleBatchIn, server: Server,
                             caller: CallerDep) -> dict[str, Any]:
    """Upsert a worker's schedules at its start; existing ones keep the time zone, misfire
    policy and grace set through the API."""
    access.check_schedule_queues(caller, body.schedules)
    rows = await engine.upsert_many(server, [_spec(s.name, s, "worker") for s in body.schedules],
                                    keep_policy=True)
    return {"schedules": rows}


@router.get("/schedules", response_model=SchedulesOut,
            summary="Every schedule with its next fire time")
async def list_schedules(server: Server) -> dict[str, Any]:
    """Every schedule with its next and last fire times."""
    return {"schedules": await read.list_schedules(server.pool)}


@router.get("/schedules/{name:path}", response_model=ScheduleOut, summary="One schedule")
async def get_schedule(name: ScheduleName, server: Server) -> Any:
    """One schedule with its next and last fire times."""
    return await read.get_schedule(server.pool, name)


@router.delete("/schedules/{name:path}", response_model=ScheduleDeletedOut,
               summary="Remove a schedule")
async def delete_schedule(name: ScheduleName, server: Server) -> dict[str, Any]:
    """Remove a schedule; tasks it already sent stay."""
    await engine.delete(server, name)
    return {"name": name, "deleted": True}


@router.post("/schedules/{name:path}/pause", response_model=ScheduleOut,
             summary="Stop firing until resumed")
async def pause_schedule(name: ScheduleName, server: Server) -> Any:
    """Stop a schedule firing until it is resumed."""
    return await engine.set_paused(server, name, True)


@router.post("/schedules/{name:path}/resume", response_model=ScheduleOut,
             summary="Fire again, from the next fire time after now")
async def resume_schedule(name: ScheduleName, server: Server) -> Any:
    """Fire a paused schedule again, from its next fire time after now."""
    return await engine.set_paused(server, name, False)


@router.get("/leader", response_model=LeaderOut,
            summary="Leader leases, and whether this replica holds the scheduler's")
async def get_leader(server: Server) -> dict[str, Any]:
    """The leader leases (who runs the cron scheduler), and whether this replica holds one."""
    elector = next((s for s in server.services if isinstance(s, LeaderElector)), None)
    return {"replica": elector.me if elector else None,
            "is_leader": bool(elector and elector.is_leader),
            "leases": await read.leases(server.pool)}

"""Definition-time behaviour of the client (no server needed): registries, options, argument
shapes, and the hooks the worker calls (load_args, dump_result, retry_delay, call_on_error)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math

import pytest
from pydantic import BaseModel

from branchwork import (
    DefinitionError,
    InvalidArgs,
    Queue,
    Registry,
    ResultNotSerializable,
    TaskContext,
    get_context,
    task_context,
)


class EmailArgs(BaseModel):
    to: str
    subject: str


def test_bare_and_configured_decorator() -> None:
    reg = Registry()

    @reg.task
    def plain(a: int) -> int:
        return a

    @reg.task(name="mail.send", queue=Queue("email", concurrency_limit=2), priority=7,
              max_retries=3, timeout_seconds=30)
    def send_email(args: EmailArgs) -> dict:
        return {"to": args.to}

    assert set(reg.tasks) == {"plain", "mail.send"}
    assert plain(4) == 4  # calling runs the function here
    assert send_email.queue == Queue("email", 2)
    assert reg.registrations()[1] == {
        "name": "mail.send", "queue": "email",
        "defaults": {"priority": 7, "max_retries": 3, "timeout_seconds": 30,
                     "concurrency_limit": 2},
        "args_schema": EmailArgs.model_json_schema(),
    }
    schema = plain.registration()["args_schema"]
    assert schema["required"] == ["a"] and schema["properties"]["a"]["type"] == "integer"


def test_duplicate_names_fail_at_definition() -> None:
    reg = Registry()

    @reg.task
    def job() -> None: ...

    with pytest.raises(DefinitionError, match="'job'"):
        @reg.task(name="job")
        def other() -> None: ...


def test_add_registry_is_live_and_checks_names() -> None:
    main, extra = Registry("main"), Registry("extra")

    @main.task
    def a() -> None: ...

    @extra.task
    def b() -> None: ...

    main.add_registry(extra)
    assert set(main.tasks) == {"a", "b"}

    @extra.task
    def c() -> None: ...

    assert "c" in main and main["c"] is c  # defined after the call, still seen

    with pytest.raises(DefinitionError):  # clash with the including registry, at definition
        @extra.task(name="a")
        def a_again() -> None: ...

    clash = Registry()

    @clash.task(name="b")
    def b_again() -> None: ...

    with pytest.raises(DefinitionError):
        main.add_registry(clash)
    assert "a" not in extra  # including does not flow backwards
    with pytest.raises(DefinitionError):
        extra.add_registry(main)  # a cycle


def test_conflicting_queue_limits_refused() -> None:
    reg = Registry()

    @reg.task(queue=Queue("q", concurrency_limit=1))
    def one() -> None: ...

    with pytest.raises(DefinitionError, match="two concurrency limits"):
        @reg.task(queue=Queue("q", concurrency_limit=2))
        def two() -> None: ...


def test_cron_validated() -> None:
    reg = Registry()

    @reg.task(cron="*/5 * * * *")
    def tick(limit: int = 10) -> None: ...

    assert tick.cron == "*/5 * * * *" and reg.cron_tasks() == [tick]
    assert tick.registration()["defaults"]["cron"] == "*/5 * * * *"
    with pytest.raises(DefinitionError, match="cron"):
        @reg.task(cron="every tuesday")
        def bad() -> None: ...
    with pytest.raises(DefinitionError, match="default"):
        @reg.task(cron="0 * * * *")
        def needs_arg(user_id: int) -> None: ...


@pytest.mark.parametrize("options", [
    {"priority": 0}, {"priority": 11}, {"max_retries": -1}, {"timeout_seconds": 0},
    {"queue": "bad queue"}, {"name": "1bad"}, {"retry_backoff": "sometimes"},
    {"retry_backoff": -2}, {"on_error": "not callable"},
])
def test_bad_options_fail_at_definition(options: dict) -> None:
    def ok() -> None: ...

    reg = Registry()
    reg.task(name="fine")(ok)  # the function itself is acceptable
    with pytest.raises(DefinitionError):
        reg.task(**options)(ok)


def test_var_args_refused() -> None:
    def gather(*items: int) -> None: ...

    with pytest.raises(DefinitionError, match=r"\*args"):
        Registry().task(gather)


def test_partials_and_callable_objects() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    class Shout:
        def __call__(self, text: str) -> str:
            return text.upper()

    reg = Registry()
    with pytest.raises(DefinitionError, match="name="):
        reg.task(functools.partial(add, 1))
    plus_one = reg.task(name="plus_one")(functools.partial(add, 1))
    assert plus_one.prepare(b=2).body["args"] == {"b": 2}
    assert plus_one.load_args({"b": 3}) == ((), {"b": 3})
    shout = reg.task(name="shout")(Shout())
    assert shout.prepare("hi").body["args"] == {"text": "hi"}
    with pytest.raises(InvalidArgs):
        shout.prepare(5)


def test_args_round_trip_plain_and_model() -> None:
    reg = Registry()

    @reg.task
    def plain(when: dt.date, n: int = 1, /, *, tags: list[str] | None = None) -> None: ...

    @reg.task
    def mail(args: EmailArgs) -> None: ...

    body = plain.prepare(dt.date(2024, 5, 1), 3, tags=["x"]).body
    assert body["args"] == {"when": "2024-05-01", "n": 3, "tags": ["x"]}
    assert plain.load_args(body["args"]) == ((dt.date(2024, 5, 1), 3), {"tags": ["x"]})
    assert plain.load_args({"when": "2024-05-01"}) == ((dt.date(2024, 5, 1), 1), {"tags": None})
    with pytest.raises(InvalidArgs):
        plain.load_args({"when": "2024-05-01", "typo": 1})

    by_model = mail.prepare(EmailArgs(to="a@b.c", subject="hi")).body["args"]
    by_fields = mail.prepare(to="a@b.c", subject="hi").body["args"]
    assert by_model == by_fields == {"to": "a@b.c", "subject": "hi"}
    args, kwargs = mail.load_args(by_model)
    assert args == () and kwargs == {"args": EmailArgs(to="a@b.c", subject="hi")}
    with pytest.raises(InvalidArgs) as info:
        mail.prepare(to="a@b.c")
    assert info.value.errors[0]["loc"] == ["subject"]


def test_with_config_validates_and_builds_body() -> None:
    reg = Registry()

    @reg.task(queue="q", priority=3, max_retries=2)
    def job(x: int) -> None: ...

    configured = job.with_config(queue="urgent", priority=10,
                                 delay=dt.timedelta(minutes=2)).with_config(
        idempotency_key="k-1")
    body = configured.prepare(1).body
    assert body == {"name": "job", "args": {"x": 1}, "queue": "urgent", "priority": 10,
                    "max_retries": 2, "delay_seconds": 120.0, "idempotency_key": "k-1"}
    kept = job.with_config(max_retries=None, priority=None, queue=None).prepare(1).body
    assert (kept["max_retries"], kept["priority"], kept["queue"]) == (2, 3, "q")
    when = dt.datetime(2030, 1, 1, 12, 0)
    assert job.with_config(run_at=when).prepare(1).body["run_at"] == "2030-01-01T12:00:00+00:00"
    for bad in ({"priority": 99}, {"colour": "red"}, {"delay": -1},
                {"delay": 1, "run_at": when}, {"queue": "no spaces"}):
        with pytest.raises(InvalidArgs):
            job.with_config(**bad)
    with pytest.raises(InvalidArgs, match="spawn_key needs a parent"):
        job.with_config(spawn_key="0").prepare(1)


def test_dump_result() -> None:
    reg = Registry()

    @reg.task
    def job() -> None: ...

    assert job.dump_result(EmailArgs(to="x", subject="y")) == {"to": "x", "subject": "y"}
    assert job.dump_result({"when": dt.date(2024, 1, 2), "n": (1, 2)}) == {
        "when": "2024-01-02", "n": [1, 2]}
    for bad in (object(), {"x": math.nan}, [1, object()], "nul\x00", 2**64, {"k": [math.inf]}):
        with pytest.raises(ResultNotSerializable):
            job.dump_result(bad)


def test_args_the_server_cannot_store_fail_at_send() -> None:
    reg = Registry()

    @reg.task
    def job(x: float = 0.0, s: str = "", n: int = 0, d: dict[int, int] | None = None) -> None: ...

    for bad in ({"x": math.nan}, {"s": "a\x00b"}, {"n": 2**63}):
        with pytest.raises(InvalidArgs):
            job.prepare(**bad)
    assert job.prepare(d={1: 2}).body["args"]["d"] == {"1": 2}  # pydantic's JSON form


def test_retry_delay_from_backoff() -> None:
    reg = Registry()

    @reg.task(retry_backoff=lambda attempt: 2 ** attempt)
    def fn_backoff() -> None: ...

    @reg.task(retry_backoff=7)
    def fixed() -> None: ...

    @reg.task(retry_backoff=lambda attempt: -5)
    def negative() -> None: ...

    assert [fn_backoff.retry_delay(a) for a in (1, 2, 3)] == [2.0, 4.0, 8.0]
    defaults = fn_backoff.registration()["defaults"]
    assert defaults["retry_backoff_function"] is True and "retry_backoff" not in defaults
    assert fixed.registration()["defaults"]["retry_backoff"] == "fixed"
    assert fixed.retry_delay(1) is None  # the server applies the stored fixed policy
    assert (fixed.retry_backoff, fixed.retry_delay_seconds) == ("fixed", 7.0)
    assert fixed.prepare().body["retry_delay_seconds"] == 7.0
    assert negative.retry_delay(1) == 0.0


def test_on_error_with_and_without_argument() -> None:
    seen: list[object] = []
    reg = Registry()

    @reg.task(on_error=lambda exc: seen.append(exc))
    def one() -> None: ...

    @reg.task(on_error=lambda: seen.append("called"))
    def none() -> None: ...

    async def async_handler(exc: Exception) -> None:
        seen.append(("async", exc))

    @reg.task(on_error=async_handler)
    def asynchronous() -> None: ...

    def broken(exc: Exception) -> None:
        raise RuntimeError("alerting is down")

    @reg.task(on_error=broken)
    def with_broken() -> None: ...

    err = ValueError("boom")
    one.call_on_error(err)
    none.call_on_error(err)
    asynchronous.call_on_error(err)
    asyncio.run(asynchronous.acall_on_error(err))
    with_broken.call_on_error(err)  # logged, not raised
    assert seen == [err, "called", ("async", err), ("async", err)]


async def test_context_isolated_between_concurrent_asyncio_tasks() -> None:
    assert get_context() is None
    seen: dict[int, list[int]] = {}

    async def attempt(task_id: int) -> None:
        with task_context(TaskContext(task_id=task_id, task_name="t", attempt_number=task_id)):
            seen[task_id] = []
            for _ in range(5):
                ctx = get_context()
                assert ctx is not None
                seen[task_id].append(ctx.task_id)
                await asyncio.sleep(0.001)
        assert get_context() is None

    await asyncio.gather(*(attempt(i) for i in range(1, 6)))
    assert seen == {i: [i] * 5 for i in range(1, 6)}
    assert get_context() is None


def test_context_from_claim_and_spawn_keys() -> None:
    ctx = TaskContext.from_claim({"id": 4, "name": "t", "attempts": 2, "max_retries": 1,
                                  "queue": "q", "priority": 9, "timeout_seconds": 5.0,
                                  "parent_id": 1, "root_id": 1, "lease_token": "abc"}, "w1")
    assert (ctx.attempt_number, ctx.worker_id, ctx.root_id, ctx.is_last_attempt) == (
        2, "w1", 1, True)
    assert [ctx.next_spawn_key() for _ in range(3)] == ["0", "1", "2"]
    ctx.raise_if_cancelled()
    ctx.cancel_requested.set()
    with pytest.raises(Exception, match="cancel requested"):
        ctx.raise_if_cancelled()

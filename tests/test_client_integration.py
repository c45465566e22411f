"""The client against a real server (uvicorn in a thread, real PostgreSQL). Workers are played
by the test itself through the HTTP worker protocol (claim + report)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import branchwork
from branchwork import (
    KV,
    Client,
    Conflict,
    InvalidArgs,
    NotFound,
    PayloadTooLarge,
    Queue,
    Registry,
    TaskCancelled,
    TaskContext,
    TaskFailed,
    TaskRun,
    TransportError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
    task_context,
)
from servers import free_port, process_server


class EmailArgs(BaseModel):
    to: str
    subject: str


reg = Registry()


@reg.task(queue="email", max_retries=3, timeout_seconds=30, priority=7)
def send_email(args: EmailArgs) -> dict:
    return {"sent": True}


@reg.task
def add(a: int, b: int = 0) -> int:
    return a + b


@pytest.fixture
def bw(server: Any) -> Iterator[str]:
    """Point the library's default clients at this test's server."""
    branchwork.configure(url=server.url)
    yield server.url
    branchwork.configure()


def _claim(api: httpx.Client, queue: str = "default", limit: int = 10) -> list[dict[str, Any]]:
    out = api.post("/v1/claim", json={"worker_id": "test-worker", "queues": [queue],
                                      "limit": limit})
    assert out.status_code == 200, out.text
    return out.json()["tasks"]


def _report(api: httpx.Client, task: dict[str, Any], **result: Any) -> None:
    out = api.post("/v1/tasks/report", json={"worker_id": "test-worker", "results": [
        {"id": task["id"], "lease_token": task["lease_token"], **result}]})
    assert out.status_code == 200, out.text
    assert out.json()["results"][0]["outcome"] == "applied"


def _later(seconds: float, fn: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        fn()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_send_and_read_back(bw: str, api: httpx.Client) -> None:
    run = send_email.send(EmailArgs(to="a@b.c", subject="hi"))
    assert (run.duplicate, run.status, run.task_name) == (False, "queued", "send_email")
    task = api.get(f"/v1/tasks/{run.id}").json()
    assert task["name"] == "send_email" and task["args"] == {"to": "a@b.c", "subject": "hi"}
    assert (task["queue"], task["priority"], task["max_retries"], task["timeout_seconds"]) == (
        "email", 7, 3, 30)
    assert run.refresh().status == "queued" and run.task["id"] == run.id

    run2 = add.send(2, b=3)
    assert api.get(f"/v1/tasks/{run2.id}").json()["args"] == {"a": 2, "b": 3}


def test_with_config(bw: str, api: httpx.Client) -> None:
    before = datetime.now(UTC)
    run = add.with_config(queue="urgent", priority=10, max_retries=4, timeout_seconds=5,
                          delay=timedelta(minutes=5)).send(1)
    task = api.get(f"/v1/tasks/{run.id}").json()
    assert (task["queue"], task["priority"], task["max_retries"], task["timeout_seconds"]) == (
        "urgent", 10, 4, 5)
    run_at = datetime.fromisoformat(task["run_at"])
    assert before + timedelta(minutes=4) < run_at < before + timedelta(minutes=6)
    assert _claim(api, "urgent") == []  # delayed: not ready

    when = datetime(2031, 1, 1, tzinfo=UTC)
    later = add.with_config(run_at=when).send(1)
    assert datetime.fromisoformat(api.get(f"/v1/tasks/{later.id}").json()["run_at"]) == when


def test_duplicate_idempotency_key_returns_existing(bw: str, api: httpx.Client) -> None:
    first = add.with_config(idempotency_key="u-1").send(1)
    again = add.with_config(idempotency_key="u-1", priority=9).send(2)
    other = add.with_config(idempotency_key="u-2").send(1)
    assert first.duplicate is False and again.duplicate is True
    assert again.id == first.id and other.id != first.id
    assert again.status is None and again.refresh().status == "queued"
    assert api.get(f"/v1/tasks/{first.id}").json()["args"] == {"a": 1, "b": 0}
    assert len(api.get("/v1/tasks").json()["tasks"]) == 2


def test_invalid_args_raise_before_sending(bw: str, api: httpx.Client) -> None:
    with pytest.raises(InvalidArgs) as info:
        send_email.send(to="a@b.c")  # subject missing
    assert info.value.errors[0]["loc"] == ["subject"]
    with pytest.raises(InvalidArgs):
        add.send("three")
    with pytest.raises(InvalidArgs):
        add.send_many([(1,), {"a": "x"}])
    assert api.get("/v1/tasks").json()["tasks"] == []


def test_batch_send(bw: str, api: httpx.Client) -> None:
    runs = add.send_many([(1,), {"a": 2, "b": 2}, (3, 3)])
    assert len({r.id for r in runs}) == 3 and not any(r.duplicate for r in runs)
    stored = {t["id"]: t["args"] for t in api.get("/v1/tasks").json()["tasks"]}
    assert [stored[r.id] for r in runs] == [{"a": 1, "b": 0}, {"a": 2, "b": 2},
                                            {"a": 3, "b": 3}]
    mixed = branchwork.send_batch([add.prepare(5), send_email.prepare(to="x@y.z", subject="s")])
    assert [r.task_name for r in mixed] == ["add", "send_email"]
    assert api.get(f"/v1/tasks/{mixed[1].id}").json()["queue"] == "email"


def test_wait_returns_result_reported_by_worker(bw: str, api: httpx.Client) -> None:
    run = add.send(20, b=22)

    def work() -> None:
        [task] = _claim(api)
        defn = reg[task["name"]]
        args, kwargs = defn.load_args(task["args"])
        _report(api, task, outcome="succeeded", result=defn.dump_result(defn.fn(*args, **kwargs)))

    worker = _later(0.3, work)
    assert run.wait(timeout=20) == 42
    worker.join()
    assert run.status == "succeeded" and run.done


def test_wait_raises_task_failed_with_error(bw: str, api: httpx.Client) -> None:
    run = add.send(1)
    [task] = _claim(api)
    _report(api, task, outcome="failed", error={"type": "ZeroDivisionError",
                                                "message": "division by zero",
                                                "traceback": "Traceback...\nZeroDivisionError"})
    with pytest.raises(TaskFailed) as info:
        run.wait(timeout=10)
    err = info.value
    assert (err.task_id, err.error_type, err.error_message) == (run.id, "ZeroDivisionError",
                                                                "division by zero")
    assert "Traceback" in (err.traceback or "") and err.attempts == 1


def test_wait_timeout(bw: str) -> None:
    run = add.send(1)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        run.wait(timeout=0.3)
    assert time.monotonic() - started < 5
    assert info.value.status == "queued" and isinstance(info.value, TimeoutError)


def test_cancel(bw: str, api: httpx.Client) -> None:
    run = add.send(1)
    assert run.cancel() == "cancelled"
    with pytest.raises(TaskCancelled):
        run.wait(timeout=5)
    assert _claim(api) == []
    with pytest.raises(Conflict) as info:
        run.cancel()
    assert info.value.code == "already_finished"
    run.retry()
    assert run.refresh().status == "queued"

    running = add.send(2)
    task = {t["id"]: t for t in _claim(api)}[running.id]
    assert running.cancel() == "running"  # asked to stop; the worker learns it by heartbeat
    beat = api.post("/v1/heartbeat", json={"worker_id": "test-worker", "tasks": [
        {"id": task["id"], "lease_token": task["lease_token"]}]}).json()
    assert beat["cancel"] == [running.id]


def test_kv_operations(bw: str) -> None:
    assert KV.get("missing") is None and KV.get("missing", default="d") == "d"
    KV.set("greeting", "hello / wörld?")
    assert KV.get("greeting") == "hello / wörld?"
    KV.set("odd/key with?chars&more", "1")
    assert KV.get("odd/key with?chars&more") == "1"
    for key in (".", "..", "../x", "a/./b"):  # dot segments must not be resolved away
        KV.set(key, f"v{key}")
    assert [KV.get(k) for k in (".", "..", "../x", "a/./b")] == ["v.", "v..", "v../x", "va/./b"]
    assert KV.delete("..") is True
    assert KV.get("..") is None and KV.get(".") == "v."
    assert KV.delete("greeting") is True and KV.delete("greeting") is False
    assert KV.set_if_absent("lock", "me") is True
    assert KV.set_if_absent("lock", "you") is False and KV.get("lock") == "me"
    assert KV.increment("n") == 1 and KV.increment("n", by=-5) == -4
    with pytest.raises(Conflict):
        KV.increment("lock")
    KV.set("big", "é" * (1_048_576 // 2))  # exactly 1 MiB of UTF-8: the limit is in bytes
    assert KV.get("big") == "é" * (1_048_576 // 2)
    with pytest.raises(PayloadTooLarge):
        KV.set("big", "x" * (1_048_576 + 1))
    with pytest.raises(PayloadTooLarge):
        KV.set("big", "é" * (1_048_576 // 2 + 1))
    with pytest.raises(TypeError):
        KV.set("k", 5)  # type: ignore[arg-type]


def test_kv_under_concurrency_is_exact(bw: str) -> None:
    threads, per_thread = 8, 25
    winners: list[str] = []

    def hammer(i: int) -> None:
        for _ in range(per_thread):
            KV.increment("counter")
        if KV.set_if_absent("once", f"t{i}"):
            winners.append(f"t{i}")

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert KV.get("counter") == str(threads * per_thread)
    assert len(winners) == 1 and KV.get("once") == winners[0]


async def test_async_twins(bw: str, api: httpx.Client) -> None:
    run = await add.asend(1, b=1)
    runs = await add.asend_many([(2,), (3,)])
    assert (await run.arefresh()).status == "queued"
    assert len({run.id, *(r.id for r in runs)}) == 3
    await KV.aset("ak", "av")
    assert await KV.aget("ak") == "av"
    assert await KV.aincrement("ac", by=3) == 3
    assert await KV.aset_if_absent("ak", "x") is False
    assert await KV.adelete("ak") is True
    assert await runs[0].acancel() == "cancelled"

    def work() -> None:
        tasks = {t["id"]: t for t in _claim(api)}
        _report(api, tasks[run.id], outcome="succeeded", result=2)

    worker = await asyncio.to_thread(lambda: _later(0.2, work))
    assert await run.aresult(timeout=20) == 2
    await asyncio.to_thread(worker.join)
    with pytest.raises(TaskCancelled):
        await runs[0].aresult(timeout=5)


def test_send_inside_task_records_parent_and_spawn_keys(bw: str, api: httpx.Client) -> None:
    parent = add.send(0)
    [claimed] = _claim(api)
    ids = []
    for attempt in (1, 2):  # the second attempt plays a retried parent
        ctx = TaskContext.from_claim({**claimed, "attempts": attempt}, worker_id="w")
        with task_context(ctx):
            first, second = add.send(1), add.send(2)
            keyed = add.with_config(spawn_key="mine").send(3)
        ids.append((first.id, second.id, keyed.id))
        assert [r.duplicate for r in (first, second, keyed)] == [attempt == 2] * 3
    assert ids[0] == ids[1]
    children = api.get("/v1/tasks", params={"parent_id": parent.id}).json()["tasks"]
    assert sorted((c["spawn_key"], c["args"]["a"]) for c in children) == [
        ("0", 1), ("1", 2), ("mine", 3)]
    assert {(c["parent_id"], c["root_id"], c["idempotency_key"]) for c in children} == {
        (parent.id, parent.id, None)}
    outside = add.send(9)  # no context: no parent
    assert api.get(f"/v1/tasks/{outside.id}").json()["parent_id"] is None
    with task_context(TaskContext.from_claim(claimed, worker_id="w")):
        detached = add.with_config(parent_id=None).send(7)
    task = api.get(f"/v1/tasks/{detached.id}").json()
    assert (task["parent_id"], task["spawn_key"]) == (None, None)


def test_queue_limit_written_on_first_send(bw: str, api: httpx.Client) -> None:
    local = Registry()

    @local.task(queue=Queue("limited", concurrency_limit=1))
    def limited(n: int) -> int:
        return n

    limited.send_many([(1,), (2,)])
    queues = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
    assert queues["limited"]["concurrency_limit"] == 1
    assert len(_claim(api, "limited")) == 1  # the limit holds

    api.put("/v1/queues/limited", json={"concurrency_limit": 5})
    with Client(bw) as client:
        local.apply_queue_settings(client)  # what the worker does when it registers
    queues = {q["name"]: q for q in api.get("/v1/queues").json()["queues"]}
    assert queues["limited"]["concurrency_limit"] == 1


def test_worker_protocol_through_client(server: Any, api: httpx.Client) -> None:
    with Client(server.url) as client:
        reg_out = client.register_worker("w-1", queues=["default"], info={"lang": "py"},
                                         tasks=reg.registrations())
        assert reg_out["tasks"] == 2
        names = {d["name"] for d in api.get("/v1/task-definitions").json()["definitions"]}
        assert names >= {"add", "send_email"}
        sent = client.send_task({"name": "add", "args": {"a": 1}})
        assert client.claim("w-1", queues=["default"], wait_seconds=0)[0]["id"] == sent["id"]
        late = client.send_tasks([{"name": "add", "args": {"a": 2}, "idempotency_key": "b"}])
        [task] = client.claim("w-1", wait_seconds=5)
        assert task["id"] == late[0]["id"]
        beat = client.heartbeat("w-1", [task])
        assert beat["lost"] == [] and beat["cancel"] == []
        verdicts = client.report("w-1", [{"id": task["id"], "lease_token": task["lease_token"],
                                          "outcome": "succeeded", "result": 2}])
        assert verdicts[0]["outcome"] == "applied"
        again = client.report("w-1", [{"id": task["id"], "lease_token": task["lease_token"],
                                       "outcome": "succeeded", "result": 2}])
        assert again[0]["outcome"] == "already_recorded"
        assert TaskRun(task["id"], client=client).result(timeout=5) == 2
        with pytest.raises(NotFound) as missing:
            TaskRun(10**12, client=client).refresh()
        assert missing.value.code == "not_found"
        with pytest.raises(ValidationError) as invalid:
            client.send_task({"name": "bad name!", "idempotency_key": "x"})
        assert invalid.value.status == 422 and invalid.value.details[0]["loc"][-1] == "name"


def test_calls_wait_out_a_server_restart(db_url: str) -> None:
    port = free_port()
    branchwork.configure(retries=30, backoff=0.1, max_backoff=0.5)
    stop = threading.Event()
    up = threading.Event()

    def restart() -> None:
        time.sleep(0.5)
        with process_server(db_url, port=port):
            up.set()
            stop.wait(60)

    try:
        with process_server(db_url, port=port) as (_, url):
            branchwork.configure(url=url, retries=30, backoff=0.1, max_backoff=0.5)
            run = add.send(1)
            KV.set("k", "before")
        # Server down: both calls below hit "connection refused" until it is back.
        thread = threading.Thread(target=restart)
        thread.start()
        try:
            assert run.refresh().status == "queued"
            again = add.send(2)
            assert KV.get("k") == "before"
            # The calls above went out while the server was down (it restarts after 0.5 s
            # plus start-up); the restarted server may answer before its health check runs.
            assert up.wait(30)
            with httpx.Client(base_url=url) as api:
                tasks = api.get("/v1/tasks").json()["tasks"]
            assert sorted(t["args"]["a"] for t in tasks) == [1, 2]  # no loss, no double
            assert again.id != run.id
        finally:
            stop.set()
            thread.join()
    finally:
        branchwork.configure()


def test_token_and_unreachable_server(make_server: Callable[..., Any]) -> None:
    secured = make_server(api_token="s3cret")
    try:
        branchwork.configure(url=secured.url)
        with pytest.raises(Unauthorized):
            add.send(1)
        branchwork.configure(url=secured.url, api_token="s3cret")
        assert add.send(1).id >= 1
        branchwork.configure(url="http://127.0.0.1:9", retries=2, backoff=0.01)
        with pytest.raises(TransportError) as info:
            add.send(1)
        assert info.value.maybe_applied is False
    finally:
        branchwork.configure()

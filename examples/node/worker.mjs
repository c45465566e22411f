// A Branchwork worker in plain Node.js (20+), built on the HTTP worker protocol alone
// (docs/protocol.md). No npm dependencies: built-in fetch, timers and signals.
//
//   import { runWorker } from "./worker.mjs";
//   await runWorker({ handlers: { add: ({ a, b }) => a + b } });
//
// What it does, in the order the protocol asks for:
//   register -> loop { long-poll claim (up to free slots) -> run handlers concurrently }
//   a heartbeat timer extends every held lease each lease/3 seconds and learns cancellations;
//   outcomes are batched into one POST /v1/tasks/report every few milliseconds;
//   SIGTERM/SIGINT stop claiming, wait up to `graceMs` for running tasks, release the rest.
import os from "node:os";
import { randomBytes } from "node:crypto";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ApiError extends Error {
  constructor(status, body) {
    super(`${status} ${body?.code ?? "error"}: ${body?.message ?? ""}`);
    this.status = status;
    this.body = body;
  }
}

export function makeApi(baseUrl, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return async function call(path, body, { signal } = {}) {
    const res = await fetch(baseUrl.replace(/\/$/, "") + path, {
      method: "POST", headers, body: JSON.stringify(body), signal,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  };
}

export async function runWorker({
  url = process.env.BRANCHWORK_URL ?? "http://127.0.0.1:8000",
  token = process.env.BRANCHWORK_API_TOKEN,
  handlers,
  queues = ["default"],
  concurrency = 10,
  waitSeconds = 10,
  graceMs = 10_000,
  log = (...a) => console.error("[node-worker]", ...a),
} = {}) {
  const api = makeApi(url, token);
  const workerId = `${os.hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const running = new Map(); // id -> { task, controller }
  let leaseSeconds = 30;
  let stopping = false;
  let claimAbort = null;

  // Register what this worker can run; the server shows it in /v1/workers.
  await api("/v1/workers/register", {
    worker_id: workerId, queues,
    info: { language: "node", version: process.version, pid: process.pid, concurrency },
    tasks: Object.keys(handlers).map((name) => ({ name, queue: queues[0] })),
  });
  log(`registered ${workerId} with tasks ${Object.keys(handlers).join(", ")}`);

  // Heartbeat: one request for every held lease; the answer says what to cancel or drop.
  async function heartbeat() {
    const tasks = [...running.values()].map(({ task }) => ({ id: task.id, lease_token: task.lease_token }));
    const out = await api("/v1/heartbeat", { worker_id: workerId, tasks });
    leaseSeconds = out.lease_seconds ?? leaseSeconds;
    for (const id of [...out.cancel, ...out.lost]) {
      const entry = running.get(id);
      if (!entry) continue;
      entry.lost = out.lost.includes(id);
      entry.controller.abort(entry.lost ? "lost" : "cancelled");
    }
  }
  let heartbeatTimer = null;
  const scheduleHeartbeat = () => {
    heartbeatTimer = setTimeout(async () => {
      try { await heartbeat(); } catch (err) { log("heartbeat failed:", err.message); }
      scheduleHeartbeat();
    }, Math.max(200, (leaseSeconds * 1000) / 3));
  };
  await heartbeat(); // learns lease_seconds
  scheduleHeartbeat();

  // Completer: outcomes go out in batches (every 5 ms or 200 outcomes), one request at a
  // time; a report that fails on the network is retried, which is safe because it is fenced.
  const pending = [];
  let flushTimer = null;
  let chain = Promise.resolve();
  async function send(batch) {
    for (;;) {
      try {
        const out = await api("/v1/tasks/report", { worker_id: workerId, results: batch });
        for (const r of out.results) {
          if (r.outcome !== "applied") log(`task ${r.id}: report ${r.outcome}`);
        }
        break;
      } catch (err) {
        if (err instanceof ApiError && err.status < 500) { log("report refused:", err.message); break; }
        log("report failed, retrying:", err.message);
        await sleep(500);
      }
    }
    for (const r of batch) running.delete(r.id); // the lease is no longer ours to extend
  }
  function flush() {
    clearTimeout(flushTimer);
    flushTimer = null;
    const batch = pending.splice(0);
    if (batch.length) chain = chain.then(() => send(batch));
    return chain;
  }
  function report(outcome) {
    pending.push(outcome);
    if (pending.length >= 200) flush();
    else if (!flushTimer) flushTimer = setTimeout(flush, 5);
  }

  async function execute(task) {
    const controller = new AbortController();
    const entry = { task, controller, lost: false, done: false };
    running.set(task.id, entry);
    const handler = handlers[task.name];
    const base = { id: task.id, lease_token: task.lease_token };
    let timer = null;
    try {
      if (!handler) throw Object.assign(new Error(`no handler for ${task.name}`), { name: "UnknownTask" });
      const ctx = { task, signal: controller.signal, workerId };
      const work = Promise.resolve().then(() => handler(task.args, ctx));
      const aborted = new Promise((_, reject) => {
        controller.signal.addEventListener("abort", () => reject(controller.signal.reason));
      });
      if (task.timeout_seconds) {
        timer = setTimeout(() => controller.abort("timeout"), task.timeout_seconds * 1000);
      }
      const result = await Promise.race([work, aborted]);
      report({ ...base, outcome: "succeeded", result: result ?? null });
    } catch (err) {
      if (entry.lost) { running.delete(task.id); return; } // someone else holds it now
      if (err === "cancelled") {
        report({ ...base, outcome: "cancelled", error: { type: "Cancelled", message: "cancellation requested" } });
      } else if (err === "timeout") {
        report({ ...base, outcome: "failed", error: { type: "TimeoutError", message: `ran past ${task.timeout_seconds}s` } });
      } else if (err === "shutdown") {
        running.delete(task.id); // released by the shutdown path
      } else {
        report({
          ...base, outcome: "failed",
          error: { type: err?.name ?? "Error", message: String(err?.message ?? err), traceback: err?.stack ?? null },
        });
      }
    } finally {
      clearTimeout(timer);
      entry.done = true;
    }
  }

  async function shutdown(signal) {
    if (stopping) { log(`second ${signal}: exiting now`); process.exit(1); }
    stopping = true;
    log(`${signal}: no more claims; waiting up to ${graceMs} ms for ${running.size} task(s)`);
    claimAbort?.abort();
  }
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  // Producer: claim only as many tasks as there are free slots, long-polling when idle.
  while (!stopping) {
    const free = concurrency - running.size;
    if (free <= 0) { await sleep(5); continue; }
    claimAbort = new AbortController();
    let tasks = [];
    try {
      const out = await api("/v1/claim", {
        worker_id: workerId, queues, task_names: Object.keys(handlers), limit: free, wait_seconds: waitSeconds,
      }, { signal: claimAbort.signal });
      tasks = out.tasks;
    } catch (err) {
      if (stopping) break;
      log("claim failed:", err.message);
      await sleep(1000);
    }
    for (const task of tasks) execute(task);
  }

  // Graceful stop: wait for running tasks, then hand back what is left without a retry.
  const deadline = Date.now() + graceMs;
  while ([...running.values()].some((e) => !e.done) && Date.now() < deadline) {
    await sleep(50);
  }
  const unfinished = [...running.values()].filter((e) => !e.done);
  for (const e of unfinished) e.controller.abort("shutdown");
  await flush();
  const left = unfinished.map(({ task }) => ({ id: task.id, lease_token: task.lease_token }));
  if (left.length) {
    const out = await api("/v1/tasks/release", { worker_id: workerId, tasks: left });
    log(`released ${out.released.length} task(s)`);
  }
  clearTimeout(heartbeatTimer);
  await api(`/v1/workers/${encodeURIComponent(workerId)}/stop`, {});
  log("stopped");
}

// Example handlers for the Node.js worker. Run:
//   BRANCHWORK_URL=http://127.0.0.1:8000 node examples/node/example.mjs
// then send work from anywhere, e.g.
//   curl -X POST $BRANCHWORK_URL/v1/tasks -H 'content-type: application/json' \
//        -d '{"name": "node.add", "args": {"a": 2, "b": 3}, "queue": "node"}'
import { runWorker } from "./worker.mjs";

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); });
});

const handlers = {
  "node.add": ({ a, b }) => ({ sum: a + b, by: "node" }),
  "node.fail": ({ message }) => { throw new TypeError(message ?? "failed on purpose"); },
  // Sleeps longer than a lease if asked: the heartbeat keeps the lease alive meanwhile.
  "node.sleep": async ({ ms }, ctx) => { await sleep(ms, ctx.signal); return { slept: ms }; },
};

await runWorker({
  handlers,
  queues: (process.env.BRANCHWORK_QUEUES ?? "node").split(","),
  concurrency: Number(process.env.BRANCHWORK_CONCURRENCY ?? 10),
  graceMs: Number(process.env.BRANCHWORK_GRACE_MS ?? 10000),
});

"""``branchwork run-worker module:registry``: options, logging, ``--reload``, the entry point."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from branchwork.protocol import MAX_CLAIM_LIMIT, check_queue_selector

from .loading import SpecError, load_registry
from .runtime import WorkerOptions, run

log = logging.getLogger("branchwork.worker")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds >= 0")
    return value


def _queue(text: str) -> str:
    try:
        return check_queue_selector(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("registry", metavar="module:registry",
                        help="where the Registry is, e.g. myapp.tasks:registry")
    parser.add_argument("-q", "--queue", dest="queues", action="append", metavar="QUEUE",
                        type=_queue,
                        help="queue name or glob pattern (e.g. 'reports.*'); repeatable; "
                             "default: the queues of the registry's tasks")
    parser.add_argument("-c", "--concurrency", type=_positive_int, default=10,
                        help="most tasks running at once in this worker (default 10)")
    parser.add_argument("--processes", type=_positive_int, default=None,
                        help="child processes for sync tasks with process isolation "
                             "(default: --concurrency; started on demand)")
    parser.add_argument("-b", "--batch-size", type=_positive_int, default=100,
                        help="most tasks leased per claim request (default 100, max 1000)")
    parser.add_argument("--isolation", choices=("process", "thread"), default="process",
                        help="where sync tasks run: child processes that can be killed on "
                             "timeout/cancel (default), or threads of the worker process")
    parser.add_argument("--grace-period", type=_seconds, default=30.0, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, how long running tasks may take to finish "
                             "before they are released to the queue (default 30)")
    parser.add_argument("--cancel-grace", type=_seconds, default=5.0, metavar="SECONDS",
                        help="how long a sync task may ignore a cancellation before it is "
                             "killed (default 5)")
    parser.add_argument("--wait-seconds", type=_seconds, default=10.0,
                        help="long-poll wait of a claim (default 10; the server caps it)")
    parser.add_argument("--log-limit", type=_positive_int, default=65_536,
                        help="captured output kept per attempt, in characters (default 65536)")
    parser.add_argument("--url", default=None,
                        help="server URL (default $BRANCHWORK_URL or http://127.0.0.1:8000)")
    parser.add_argument("--log-level", default="info", type=str.lower,
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="least severe worker log lines printed: 'info' (default) shows a "
                             "line per finished task, 'warning' only failures and problems")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="same as --log-level debug")
    parser.add_argument("--reload", action="store_true",
                        help="development: restart the worker when a .py file under the "
                             "current directory changes (watchfiles)")


def options_from_args(args: argparse.Namespace) -> WorkerOptions:
    url = args.url or os.environ.get("BRANCHWORK_URL") or "http://127.0.0.1:8000"
    return WorkerOptions(
        spec=args.registry, url=url.rstrip("/"), queues=args.queues,
        concurrency=args.concurrency, processes=args.processes,
        batch_size=min(args.batch_size, MAX_CLAIM_LIMIT), isolation=args.isolation,
        grace_seconds=args.grace_period, cancel_grace_seconds=args.cancel_grace,
        wait_seconds=args.wait_seconds, log_limit=args.log_limit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="branchwork run-worker",
        description="Run a Python worker: claims the registry's tasks and runs them.")
    add_worker_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``branchwork run-worker ARGS``: parse, set up logging, run (or watch with --reload)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging("debug" if args.verbose else args.log_level)
    if args.reload:
        return run_with_reload([a for a in argv if a != "--reload"], args.grace_period)
    return run_worker_command(args)


def setup_logging(level: str) -> None:
    """Worker lines to stderr at ``level``. The root logger stays at INFO or lower so that a
    task's own log records still reach its captured logs (``capture``); the stderr handler
    is what filters."""
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    root = logging.getLogger()
    chosen = getattr(logging, level.upper())
    for handler in root.handlers:
        handler.setLevel(chosen)
    root.setLevel(min(chosen, logging.INFO))
    # The worker's own lines are filtered at their logger, so that below ``level`` they cost
    # nothing on the hot path (one per finished task): no record is even made.
    logging.getLogger("branchwork.worker").setLevel(chosen)
    # The client's one line per HTTP request is noise in the worker's log and in task logs.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(chosen, logging.WARNING))


def run_with_reload(argv: list[str], grace: float) -> int:
    """Run the worker in a child process and restart it when a .py file changes.

    The child runs in its own session: a Ctrl-C at the terminal reaches only this process,
    which hands the child one SIGINT (its graceful stop) instead of two (its "exit now")."""
    import watchfiles

    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    command = [sys.executable, "-m", "branchwork.cli", "run-worker", *argv]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, start_new_session=True)

    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(grace + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a process started in the background (``cmd &``) inherits it as ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    log.info("--reload: watching %s for changes to .py files", os.getcwd())
    proc = start()
    try:
        for changes in watchfiles.watch(os.getcwd(), watch_filter=watchfiles.PythonFilter(),
                                        raise_interrupt=True):
            names = ", ".join(sorted({os.path.relpath(path) for _, path in changes}))
            log.info("--reload: %s changed; restarting the worker", names)
            stop(proc)
            proc = start()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)
    return 0


def run_worker_command(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    # Tasks that send tasks, and child processes, talk to the same server as the worker.
    os.environ["BRANCHWORK_URL"] = options.url
    try:
        registry = load_registry(options.spec)
    except SpecError as exc:
        print(f"branchwork run-worker: {exc}", file=sys.stderr)
        return 2
    if not registry.tasks:
        print(f"branchwork run-worker: {options.spec} defines no tasks", file=sys.stderr)
        return 2
    return run(registry, options)

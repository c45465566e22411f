"""The engine: one module per use case (send, claim, heartbeat, report, release, cancel,
retry, queues, workers, kv, sweep; workflows, runs, directives, schedules, trees).

Each takes plain values and the server state (or the pool), opens and owns its transaction
(``tx.py``), composes ``app/store`` statements, and raises ``errors.DomainError`` subclasses.
"""

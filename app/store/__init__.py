"""All SQL of the service lives in this package: one module per concern.

The hot path (send, claim, heartbeat, report) is hand-written SQL over psycopg 3; each
public coroutine is one transaction on a pooled connection.
"""

"""All SQL of the service lives in this package: statements grouped by table.

Each function runs statements in its caller's transaction (it takes a cursor or a
connection; ``app/engine/tx.py`` opens transactions), returns typed rows and decides nothing:
no HTTP errors, no metrics, no caches. No store module imports another, except the shared
helpers of ``sql.py`` (JSON parameters, NOTIFY), which import nothing from the store.
"""

"""``--ray``: ingest and tokenize on a Ray cluster, writing the same store one machine writes.

Ray is an optional extra (``pip install -e ".[ray]"``); nothing here imports it before a command asks
for it, so the rest of ``dreamer_data`` never needs it.
"""

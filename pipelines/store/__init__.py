"""The store: connections, the embedded PostgreSQL, migrations and every query against the ``app`` schema.

Imports nothing of the harness above it (only ``pipelines.settings`` and ``pipelines.clock``).
"""

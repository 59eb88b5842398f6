"""The warm-pool run launcher: Dagster runs forked from a pre-imported zygote (see pool.py)."""

"""The stack's sensors, each ticking on every loop of Dagster's sensor daemon (``EVERY_LOOP``)."""

# Dagster's sensor daemon loops every 5 s (``MIN_INTERVAL_LOOP_TIME``, its floor) and skips a
# sensor whose last tick *started* less than ``minimum_interval_seconds`` ago. Asked for 5 s, a
# tick that started a little later in its loop than the next one does is skipped: 37 of 57 reaper
# ticks in one soak came 10 s apart, not 5. Any interval under the loop's ticks on every loop.
EVERY_LOOP = 1

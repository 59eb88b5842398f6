"""Settle time after the stack is back, per kill mode and crash point (p50, max): the durability
proof repeated on its own stack (PORT+3: 3004 and .data/proof-3004 by default), one run, machine noted.

    N=10 python -m bench.crashdemo_settle     (N proofs, cycling every mode and point)
"""

from __future__ import annotations

import os
import sys

from scripts import crashdemo_proof, stack


def main() -> int:
    settings = crashdemo_proof.proof_settings()
    stack.up(settings)
    try:
        return crashdemo_proof.soak(settings, int(os.environ.get("N", "10")))
    finally:
        stack.down(settings)


if __name__ == "__main__":
    sys.exit(main())

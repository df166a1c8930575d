"""The ``accel`` console script.

For ``accel run`` it first forks the simulator process (:mod:`accel.simproc`), before
NumPy is imported: the child loads Numba and the simulator's kernel on the other core
while this process imports the compiler, builds the problem and compiles it.  Everything
else is :func:`accel.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> int:
    proc = None
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        from .simproc import SimProcess
        proc = SimProcess.start()
    try:
        from .cli import main as cli_main
        return cli_main(simulator=proc)
    finally:
        if proc is not None:
            proc.close()

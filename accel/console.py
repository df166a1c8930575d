"""The ``accel`` console script.

For ``accel run`` it first forks the simulator process (:mod:`accel.simproc`), before
NumPy is imported: the child loads Numba and the simulator's kernel on the other core
while this process imports the compiler, builds the problem and compiles it.  Everything
else is :func:`accel.cli.main`.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    proc = None
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        from .simproc import SimProcess
        proc = SimProcess.start()
    try:
        from .cli import main as cli_main
        code = cli_main(simulator=proc)
    finally:
        if proc is not None:
            proc.close()
    if proc is not None:
        # every output file is closed and renamed by now: leave without tearing down the
        # interpreter's objects (about 0.1 s for a large layer)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code

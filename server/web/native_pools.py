"""The native libraries' thread pools: one thread each in a worker.

numpy's OpenBLAS starts, at import, a pool of one thread per core the process may
run on, and spreads a large matrix product (a big knowledge base's vector search) over
all of them. The panel scales by workers, one a core (docs/deploy.md): the pools of
several workers on a host, or of a worker in a container with less CPU than its node
has cores, would fight over the same cores, and threads of one pool on a core they
share spin against each other (a vector search's p99 went from 5 to 60 ms in the
benchmarks' own process so). Searches already run side by side in the retrieval
lane's threads (server/pipeline/retrieval.py), numpy letting go of the GIL. So
``serve`` and ``dev`` ask for one thread a pool, before numpy is imported (the pools
read it then, and only then); an operator's own value stands.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: OpenBLAS (numpy's wheels), and the OpenMP and MKL builds some installs use instead.
POOL_SIZES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_each(environ: MutableMapping[str, str] = os.environ) -> None:
    """Ask each native pool for one thread, unless ``environ`` already sets its size.

    Call it before anything imports numpy; worker processes started afterwards
    inherit it."""
    for name in POOL_SIZES:
        environ.setdefault(name, "1")

"""One BLAS thread for PinText's own matrix products while it ingests or answers a query.

numpy's OpenBLAS splits a product above a small size across a thread per core, and its threads spin for a while
after each call, waiting for the next. PinText's products are small (a batch of 500 pins against ~1,400 centroids,
a query's words against its hits' words), ingest already spreads its batches over worker threads, and the engine
node usually shares the machine's cores: the spinning only takes CPU from the node. On the 2-core machine of
docs/results/ingest-speed ("One BLAS thread"), one thread cut the client's CPU from ~148 to ~63 µs a pin during
ingest (9,300 -> 13,200 docs/s) and from ~14 to ~5 ms a query, at the same p50.

The limit is counted: the first holder in sets it, the last one out puts back whatever was there before, so a
search that ends while an ingest runs does not lift the ingest's limit. OpenBLAS (numpy's wheels) applies a limit
to the thread that set it and to the threads it starts afterwards (measured: ingest's workers start inside the
block), not to threads already running elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

_lock = threading.Lock()
_holders = 0
_limiter: Any = None


@lru_cache(maxsize=1)
def _blas_pools() -> Any:
    """The BLAS libraries loaded in this process (looked up once, on first use: by then numpy is loaded)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS runs one thread inside the block, for every thread of the process; the previous limit comes back when
    the last block open anywhere closes."""
    global _holders, _limiter
    with _lock:
        if _holders == 0:
            _limiter = _blas_pools().limit(limits=1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None

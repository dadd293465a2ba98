"""`pintext.threads.one_blas_thread`: one BLAS thread inside, the previous limit back when the last holder leaves,
however the holders' threads interleave."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from pintext.threads import one_blas_thread


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_one_thread_inside_and_the_previous_limit_after():
    assert blas_threads(), "numpy loads a BLAS library"
    with threadpool_limits(limits=3, user_api="blas"):
        assert blas_threads() == {3}
        with one_blas_thread():
            assert blas_threads() == {1}
            product = np.ones((300, 300)) @ np.ones((300, 300))
        assert blas_threads() == {3} and product[0, 0] == 300


def hold_briefly() -> None:
    with one_blas_thread():
        np.ones((200, 200)) @ np.ones((200, 200))


def test_a_holder_leaving_early_keeps_the_limit_for_those_still_in():
    # Read on the main thread, which holds first: OpenBLAS's getter answers for the thread that set the limit.
    with threadpool_limits(limits=3, user_api="blas"):
        seen = []
        with one_blas_thread():
            worker = threading.Thread(target=hold_briefly)
            worker.start()
            worker.join()
            seen.append(blas_threads())  # a worker came and went: the main thread still holds the limit
            with one_blas_thread():  # nested on the same thread
                seen.append(blas_threads())
            seen.append(blas_threads())
        seen.append(blas_threads())
        assert seen == [{1}, {1}, {1}, {3}]

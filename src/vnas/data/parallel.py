"""Run one function per case, in worker processes, with a progress bar."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Worker initialiser: end the worker when its parent dies.

    A worker blocks reading its task queue, whose write end every worker inherits too,
    so without this a ``kill -9`` of ``vnas preprocess`` would leave its workers running
    (and holding the output's temporary folder) forever. Linux only: elsewhere a killed
    run's workers still finish their current case and then wait.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def map_cases(
    fn: Callable[..., Any],
    calls: Sequence[tuple],
    jobs: int = 1,
    desc: str = "",
    progress: bool = True,
) -> list[Any]:
    """``[fn(*args) for args in calls]`` over ``jobs`` processes, results in input order.

    The first exception (e.g. a ``VNASError`` for a bad case) cancels the cases not yet
    started and is re-raised. ``jobs <= 1`` runs everything in this process.
    """
    results: list[Any] = [None] * len(calls)
    with tqdm(total=len(calls), desc=desc, disable=not progress) as bar:
        if jobs <= 1 or len(calls) <= 1:
            for i, args in enumerate(calls):
                results[i] = fn(*args)
                bar.update()
            return results
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(calls)),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return results

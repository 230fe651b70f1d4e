"""Run one function per case, in worker processes, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm


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
        with ProcessPoolExecutor(max_workers=min(jobs, len(calls))) as pool:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return results

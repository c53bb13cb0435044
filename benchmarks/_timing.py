"""Timing and statistics helpers shared by the benchmarks.

Wall-clock comparisons on a shared machine are noisy, so variants are never timed one after the
other: :func:`interleaved` runs them in rounds, in a fresh random order each round, and every
summary is a median with a spread (interquartile range, bootstrap interval) rather than a mean.
"""
from __future__ import annotations

import datetime
import gc
import os
import platform
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Sequence, Tuple

import numpy as np
import torch


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of a sample of timings (same unit as the sample)."""

    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        """Interquartile range q3 − q1."""
        return self.q3 - self.q1


def spread(values: Sequence[float]) -> Spread:
    """Median and quartiles of ``values``."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return Spread(float(median), float(q1), float(q3))


def time_block(fn: Callable[[], None], inner: int) -> float:
    """Mean wall-clock time of ``inner`` consecutive calls of ``fn``, in microseconds."""
    start = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - start) / inner / 1e3


def interleaved(variants: Mapping[str, Callable[[], None]], rounds: int, inner: int,
                warmup: int, seed: int = 0, max_seconds: float = float("inf")) -> Dict[str, np.ndarray]:
    """Time several variants of the same work, alternating them.

    Each variant is first called ``warmup`` times. Then, in each of ``rounds`` rounds, the
    variants run in a freshly shuffled order, each timed over ``inner`` consecutive calls, so
    that slow phases of a shared machine hit every variant alike. The garbage collector runs
    (untimed) before each round. Stops after the first round that ends more than
    ``max_seconds`` after the start (a busy machine must not stretch a benchmark without bound).

    Returns:
        variant name -> array of per-call times in microseconds, one per round run; entry ``r`` of
        every array comes from the same round, so ratios can be paired.
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    order_rng = random.Random(seed)
    times: Dict[str, list] = {name: [] for name in names}
    deadline = time.perf_counter() + max_seconds
    for _ in range(rounds):
        order_rng.shuffle(names)
        gc.collect()
        for name in names:
            times[name].append(time_block(variants[name], inner))
        if time.perf_counter() > deadline:
            break
    return {name: np.asarray(values) for name, values in times.items()}


def ratio_of_medians(numerator: np.ndarray, denominator: np.ndarray, n_boot: int = 2000,
                     level: float = 0.95, seed: int = 0) -> Tuple[float, float, float]:
    """median(numerator) / median(denominator) with a paired bootstrap interval.

    Rounds are resampled together (the two arrays must be paired by round, as
    :func:`interleaved` returns them).

    Returns:
        (ratio, low, high): the point estimate and the ``level`` percentile interval.
    """
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    point = float(np.median(numerator) / np.median(denominator))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(numerator), size=(n_boot, len(numerator)))
    boots = np.median(numerator[idx], axis=1) / np.median(denominator[idx], axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return point, float(low), float(high)


def bootstrap_mean_ratio(numerator: np.ndarray, denominator: np.ndarray, n_boot: int = 2000,
                         level: float = 0.95, seed: int = 0) -> Tuple[float, float, float]:
    """mean(numerator) / mean(denominator) for two independent samples, with a bootstrap interval.

    Used for variance ratios: each sample holds per-replicate squared deviations, whose mean is
    the (total) variance. The two samples are resampled independently.
    """
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    point = float(numerator.mean() / denominator.mean())
    rng = np.random.default_rng(seed)
    num = numerator[rng.integers(0, len(numerator), size=(n_boot, len(numerator)))].mean(axis=1)
    den = denominator[rng.integers(0, len(denominator), size=(n_boot, len(denominator)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(num / den, [tail, 100 - tail])
    return point, float(low), float(high)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or ``platform.processor()`` elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> Dict[str, str]:
    """What a reader needs to compare timings: CPU, core count, threads, versions, date."""
    return {
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

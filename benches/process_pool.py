#!/usr/bin/env python3
"""Python's process pools on the workloads of `benches/process_pool.rs`.

Python 3.11's `concurrent.futures.ProcessPoolExecutor(2)` and
`multiprocessing.Pool(2)`, both with the fork start method requested
explicitly (`multiprocessing.get_context("fork")`), on the same machine and
the same workloads as verisync's `ProcessPool(2)`:

| group                     | row                                   | one sample |
|---------------------------|---------------------------------------|------------|
| process_pool_startup      | python_ppe_fork                       | constructor to the first `submit(tiny, 0).result()` (shutdown not timed) |
| process_pool_startup      | python_mp_pool_fork                   | constructor to the first `apply_async(tiny, (0,)).get()` (close + join not timed) |
| process_pool_tiny_tasks   | python_ppe_submit_result              | 5,000 `submit(tiny, i)`, then every `.result()`; per task |
| process_pool_tiny_tasks   | python_mp_pool_apply_async            | 5,000 `apply_async(tiny, (i,))`, then every `.get()`; per task |
| process_pool_map          | python_ppe_map                        | `list(executor.map(tiny, range(5000)))` (chunksize 1, its default); per item |
| process_pool_map          | python_mp_pool_map_chunksize_1        | `pool.map(tiny, range(5000), chunksize=1)`; per item |
| process_pool_map          | python_mp_pool_map_default_chunksize  | `pool.map(tiny, range(5000))` (chunksize = 5000 / (4 × 2) = 625, as verisync's `map` now chooses); per item |

`tiny(x)` returns `x`. The task and map pools are built once and warmed up
with one untimed round; each row reports the median of its timed rounds.
Results are checked.

One command runs both halves and the table:

    cargo bench --bench process_pool && python3 benches/process_pool.py && python3 benches/ratios.py

Writes <target>/python-bench/process_pool.json ({group: {row: ns}}, the
shape of criterion's medians; <target> is $CARGO_TARGET_DIR or the
repository's target/). Standard library only.
"""

import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time

WORKERS = 2
TASKS = 5_000
STARTUPS = 20
ROUNDS = 5


def tiny(x):
    return x


EXPECTED = sum(range(TASKS))


def median_of(label, function, repeats, warm_up=True):
    if warm_up:
        function()
    samples = [function() for _ in range(repeats)]
    median = statistics.median(samples)
    print(f"{label:<48} median {fmt(median):>10}   "
          f"(samples {', '.join(fmt(s) for s in samples)})", flush=True)
    return median, samples


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main():
    ctx = multiprocessing.get_context("fork")
    results = {}
    samples = {}

    def record(group, row, label, function, repeats, warm_up=True):
        median, values = median_of(label, function, repeats, warm_up)
        results.setdefault(group, {})[row] = median
        samples[f"{group}/{row}"] = values

    # -- start-up: constructor to first result ------------------------------
    def ppe_startup():
        start = time.perf_counter_ns()
        executor = concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx)
        assert executor.submit(tiny, 0).result() == 0
        elapsed = time.perf_counter_ns() - start
        executor.shutdown(wait=True)
        return elapsed

    def mp_startup():
        start = time.perf_counter_ns()
        pool = ctx.Pool(WORKERS)
        assert pool.apply_async(tiny, (0,)).get() == 0
        elapsed = time.perf_counter_ns() - start
        pool.close()
        pool.join()
        return elapsed

    record("process_pool_startup", "python_ppe_fork",
           "start-up ProcessPoolExecutor(2, fork)", ppe_startup, STARTUPS)
    record("process_pool_startup", "python_mp_pool_fork",
           "start-up multiprocessing.Pool(2) fork", mp_startup, STARTUPS)

    # -- tiny tasks and map --------------------------------------------------
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as executor:
        def ppe_tasks():
            start = time.perf_counter_ns()
            futures = [executor.submit(tiny, x) for x in range(TASKS)]
            total = sum(future.result() for future in futures)
            elapsed = time.perf_counter_ns() - start
            assert total == EXPECTED
            return elapsed / TASKS

        def ppe_map():
            start = time.perf_counter_ns()
            total = sum(list(executor.map(tiny, range(TASKS))))
            elapsed = time.perf_counter_ns() - start
            assert total == EXPECTED
            return elapsed / TASKS

        record("process_pool_tiny_tasks", "python_ppe_submit_result",
               "tiny task, ProcessPoolExecutor submit+result", ppe_tasks, ROUNDS)
        record("process_pool_map", "python_ppe_map",
               "map item, ProcessPoolExecutor.map", ppe_map, ROUNDS)

    with ctx.Pool(WORKERS) as pool:
        def mp_tasks():
            start = time.perf_counter_ns()
            pending = [pool.apply_async(tiny, (x,)) for x in range(TASKS)]
            total = sum(result.get() for result in pending)
            elapsed = time.perf_counter_ns() - start
            assert total == EXPECTED
            return elapsed / TASKS

        def mp_map(chunksize):
            def run():
                start = time.perf_counter_ns()
                total = sum(pool.map(tiny, range(TASKS), chunksize=chunksize))
                elapsed = time.perf_counter_ns() - start
                assert total == EXPECTED
                return elapsed / TASKS
            return run

        record("process_pool_tiny_tasks", "python_mp_pool_apply_async",
               "tiny task, multiprocessing.Pool apply_async", mp_tasks, ROUNDS)
        record("process_pool_map", "python_mp_pool_map_chunksize_1",
               "map item, multiprocessing.Pool.map chunksize=1", mp_map(1), ROUNDS)
        record("process_pool_map", "python_mp_pool_map_default_chunksize",
               "map item, multiprocessing.Pool.map default chunksize", mp_map(None), ROUNDS)

    path = output_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({
            "script": "benches/process_pool.py",
            "python": platform.python_version(),
            "start_method": "fork",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "unit": "ns per start-up / per task / per item (median of samples)",
            "groups": results,
            "samples": samples,
        }, f, indent=2)
    print(f"wrote {path}")
    return 0


def output_path():
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        target = os.path.join(repo, "target")
    return os.path.join(target, "python-bench", "process_pool.json")


if __name__ == "__main__":
    sys.exit(main())

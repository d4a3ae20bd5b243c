#!/usr/bin/env python3
"""Python's multiprocessing.Lock and Value on the workloads of `benches/process_shared.rs`.

Python 3's `multiprocessing` with the fork start method requested explicitly
(`multiprocessing.get_context("fork")`), on the same machine and the same
workloads as verisync's `process::Lock` and `process::Value`:

| group                     | row                          | one sample |
|---------------------------|------------------------------|------------|
| process_lock_uncontended  | python_mp_lock               | 200,000 `lock.acquire(); lock.release()` in a loop; per pair |
| process_lock_uncontended  | python_mp_lock_with          | 200,000 `with lock: pass`; per pair |
| process_lock_contended_2  | python_mp_lock_2_processes   | 2 processes × 20,000 acquire/release at once (started, then released by an Event; timed from the `set` until both report done on a Semaphore); per operation of both together |
| process_value_fetch_add   | python_mp_value_with_lock    | 200,000 `with v.get_lock(): v.value += 1` on `Value('Q', 0)`; per increment |

Each row reports the median of its timed samples (one warm-up first), and
counts are checked. Python's loop overhead is part of every Python row, as
it is part of every Python program.

QUEUE ROWS: `multiprocessing.Queue` / `JoinableQueue` messages per second
between two processes (u64 and 1 KiB items, with task_done) belong here, in
a group `process_queue_*`, when verisync's process::JoinableQueue lands.

One command runs both halves and the table:

    cargo bench --bench process_shared && python3 benches/process_shared.py && python3 benches/ratios.py

Writes <target>/python-bench/process_shared.json ({group: {row: ns}}, the
shape of criterion's medians; <target> is $CARGO_TARGET_DIR or the
repository's target/). Standard library only.
"""

import json
import multiprocessing
import os
import platform
import statistics
import sys
import time

UNCONTENDED = 200_000
CONTENDED_ROUND = 20_000
CONTENDERS = 2
SAMPLES = 10
CONTENDED_SAMPLES = 10


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def median_of(label, function, repeats):
    function()  # warm-up
    samples = [function() for _ in range(repeats)]
    median = statistics.median(samples)
    print(f"{label:<52} median {fmt(median):>10}   "
          f"(samples {', '.join(fmt(s) for s in samples)})", flush=True)
    return median, samples


def contend(lock, entries, ready, go, done):
    ready.release()
    go.wait()
    inside = 0
    for _ in range(CONTENDED_ROUND):
        lock.acquire()
        inside += 1
        lock.release()
    with entries.get_lock():
        entries.value += inside
    done.release()


def main():
    ctx = multiprocessing.get_context("fork")
    results = {}
    samples = {}

    def record(group, row, label, function, repeats):
        median, values = median_of(label, function, repeats)
        results.setdefault(group, {})[row] = median
        samples[f"{group}/{row}"] = values

    # -- uncontended: one process, nobody else around ----------------------
    lock = ctx.Lock()

    def acquire_release():
        acquire, release = lock.acquire, lock.release
        start = time.perf_counter_ns()
        for _ in range(UNCONTENDED):
            acquire()
            release()
        return (time.perf_counter_ns() - start) / UNCONTENDED

    def with_lock():
        start = time.perf_counter_ns()
        for _ in range(UNCONTENDED):
            with lock:
                pass
        return (time.perf_counter_ns() - start) / UNCONTENDED

    record("process_lock_uncontended", "python_mp_lock",
           "multiprocessing.Lock acquire()+release()", acquire_release, SAMPLES)
    record("process_lock_uncontended", "python_mp_lock_with",
           "multiprocessing.Lock `with lock: pass`", with_lock, SAMPLES)

    # -- contended by 2 processes ------------------------------------------
    def contended_round():
        lock = ctx.Lock()
        entries = ctx.Value("Q", 0)
        ready, done, go = ctx.Semaphore(0), ctx.Semaphore(0), ctx.Event()
        children = [ctx.Process(target=contend, args=(lock, entries, ready, go, done))
                    for _ in range(CONTENDERS)]
        for child in children:
            child.start()
        for _ in range(CONTENDERS):
            assert ready.acquire(timeout=60), "a contender did not start"
        start = time.perf_counter_ns()
        go.set()
        for _ in range(CONTENDERS):
            assert done.acquire(timeout=600), "a contender did not finish"
        elapsed = time.perf_counter_ns() - start
        for child in children:
            child.join()
            assert child.exitcode == 0
        assert entries.value == CONTENDED_ROUND * CONTENDERS
        return elapsed / (CONTENDED_ROUND * CONTENDERS)

    record("process_lock_contended_2", "python_mp_lock_2_processes",
           "multiprocessing.Lock, 2 processes contending", contended_round, CONTENDED_SAMPLES)

    # -- Value += 1 under its lock -----------------------------------------
    value = ctx.Value("Q", 0)

    def value_increment():
        before = value.value
        get_lock = value.get_lock
        start = time.perf_counter_ns()
        for _ in range(UNCONTENDED):
            with get_lock():
                value.value += 1
        elapsed = time.perf_counter_ns() - start
        assert value.value == before + UNCONTENDED
        return elapsed / UNCONTENDED

    record("process_value_fetch_add", "python_mp_value_with_lock",
           "multiprocessing.Value: with get_lock(): value += 1", value_increment, SAMPLES)

    # QUEUE ROWS: the process_queue_* groups go here.

    path = output_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({
            "script": "benches/process_shared.py",
            "python": platform.python_version(),
            "start_method": "fork",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "unit": "ns per lock+unlock / per operation / per increment (median of samples)",
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
    return os.path.join(target, "python-bench", "process_shared.json")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Python's multiprocessing.Lock, Value, Queue and JoinableQueue on the workloads of `benches/process_shared.rs`.

Python 3's `multiprocessing` with the fork start method requested explicitly
(`multiprocessing.get_context("fork")`), on the same machine and the same
workloads as verisync's `process::Lock`, `process::Value` and
`process::JoinableQueue`:

| group                     | row                          | one sample |
|---------------------------|------------------------------|------------|
| process_lock_uncontended  | python_mp_lock               | 200,000 `lock.acquire(); lock.release()` in a loop; per pair |
| process_lock_uncontended  | python_mp_lock_with          | 200,000 `with lock: pass`; per pair |
| process_lock_contended_2  | python_mp_lock_2_processes   | 2 processes × 20,000 acquire/release at once (started, then released by an Event; timed from the `set` until both report done on a Semaphore); per operation of both together |
| process_value_fetch_add   | python_mp_value_with_lock    | 200,000 `with v.get_lock(): v.value += 1` on `Value('Q', 0)`; per increment |
| process_queue_u64         | python_mp_queue              | 20,000 `q.put(i)` by this process, `q.get()` by a child (started and ready first), timed until the child has got them all and sent back their sum (a `SimpleQueue`); per message |
| process_queue_u64         | python_mp_joinable_queue     | the same with `JoinableQueue`: the child calls `task_done()` after each get, timed until `q.join()` returns; per message |
| process_queue_1k          | python_mp_queue, python_mp_joinable_queue | the same with 1 KiB `bytes` messages |

Each row reports the median of its timed samples (one warm-up first), and
counts are checked. Python's loop overhead is part of every Python row, as
it is part of every Python program.

The queue rows match `benches/process_shared.rs`'s `process_queue_*` groups
(a producer process and a consumer process, u64 and 1 KiB items); the
consumer adds up what it got and the sum is checked.

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
QUEUE_ROUND = 20_000
QUEUE_SAMPLES = 5


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


def make_u64(i):
    return i


def make_1k(i):
    return bytes((i & 255,)) * 1024


def weigh_u64(item):
    return item


def weigh_1k(item):
    return len(item) + item[0]


def consume_queue(q, weigh, joinable, ready, done):
    ready.release()
    weight = 0
    get = q.get
    for _ in range(QUEUE_ROUND):
        weight += weigh(get())
        if joinable:
            q.task_done()
    done.put(weight)


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

    # -- queues: messages from this process to a child ---------------------
    def queue_round(make, weigh, joinable):
        q = ctx.JoinableQueue() if joinable else ctx.Queue()
        ready, done = ctx.Semaphore(0), ctx.SimpleQueue()
        child = ctx.Process(target=consume_queue, args=(q, weigh, joinable, ready, done))
        child.start()
        assert ready.acquire(timeout=60), "the consumer did not start"
        expected = sum(weigh(make(i)) for i in range(QUEUE_ROUND))
        put = q.put
        start = time.perf_counter_ns()
        for i in range(QUEUE_ROUND):
            put(make(i))
        if joinable:
            q.join()
            elapsed = time.perf_counter_ns() - start
            weight = done.get()
        else:
            weight = done.get()
            elapsed = time.perf_counter_ns() - start
        child.join()
        assert child.exitcode == 0
        assert weight == expected, (weight, expected)
        return elapsed / QUEUE_ROUND

    for group, make, weigh, what in [("process_queue_u64", make_u64, weigh_u64, "u64"),
                                      ("process_queue_1k", make_1k, weigh_1k, "1 KiB")]:
        record(group, "python_mp_queue", f"multiprocessing.Queue, {what} messages",
               lambda: queue_round(make, weigh, False), QUEUE_SAMPLES)
        record(group, "python_mp_joinable_queue",
               f"multiprocessing.JoinableQueue + task_done, {what} messages",
               lambda: queue_round(make, weigh, True), QUEUE_SAMPLES)

    path = output_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({
            "script": "benches/process_shared.py",
            "python": platform.python_version(),
            "start_method": "fork",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "unit": "ns per lock+unlock / per operation / per increment / per message (median of samples)",
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

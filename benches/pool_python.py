#!/usr/bin/env python3
"""Python's ThreadPoolExecutor(2) on the tiny-task workload of `benches/pool.rs`.

20,000 tiny tasks (a function that does nothing with its argument) are
submitted to one `concurrent.futures.ThreadPoolExecutor(max_workers=2)`, then
awaited with `concurrent.futures.wait`; the round is timed from the first
submit to the end of the wait, per task. The executor is built once (its
threads start lazily on the first round, which is a warm-up and not counted);
the script runs ROUNDS timed rounds and reports their median — the figure
`benches/ratios.py` shows beside `tiny_tasks_20k/verisync_submit`.

    python3 benches/pool_python.py            # prints and writes the JSON
    python3 benches/ratios.py                 # reads it (runs this script if it is missing)

Writes <target>/python-bench/pool_python.json ({group: {row: ns per task}},
the same shape as criterion's medians; <target> is $CARGO_TARGET_DIR or
the repository's target/). Standard library only.
"""

import concurrent.futures
import json
import os
import platform
import statistics
import sys
import time

WORKERS = 2
TASKS = 20_000
ROUNDS = 9


def tiny(index):
    """The tiny task: nothing to do with its argument."""
    return None


def one_round(executor):
    start = time.perf_counter_ns()
    futures = [executor.submit(tiny, index) for index in range(TASKS)]
    done, not_done = concurrent.futures.wait(futures)
    elapsed = time.perf_counter_ns() - start
    assert len(done) == TASKS and not not_done
    return elapsed / TASKS


def output_path():
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        target = os.path.join(repo, "target")
    return os.path.join(target, "python-bench", "pool_python.json")


def main():
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as executor:
        one_round(executor)  # warm-up: starts the worker threads
        samples = [one_round(executor) for _ in range(ROUNDS)]
    median = statistics.median(samples)
    print(f"Python {platform.python_version()} ThreadPoolExecutor({WORKERS}), "
          f"{TASKS} tiny tasks submitted then awaited: median {median / 1e3:.2f} µs per task "
          f"(rounds: {', '.join(f'{s / 1e3:.2f}' for s in samples)} µs)")
    path = output_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({
            "script": "benches/pool_python.py",
            "python": platform.python_version(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "unit": "ns per task (median of rounds)",
            "groups": {"tiny_tasks_20k": {"python_thread_pool_executor": median}},
            "samples": {"tiny_tasks_20k/python_thread_pool_executor": samples},
        }, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

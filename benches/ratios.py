#!/usr/bin/env python3
"""Ratio table for the criterion benches (locks, queue, pool, process_pool, process_shared) against the targets of issues 2–5, 14 and 16.

Reads criterion's saved medians (target/criterion/<group>/<row>/new/estimates.json,
named by the benchmark.json next to each) and prints a markdown table:
verisync's median, the competitor's median from the same run, their time ratio
and the target with pass/fail. Then a table of every row's median (anchors too).

    cargo bench --bench locks && python3 benches/ratios.py
    cargo bench --bench queue && python3 benches/ratios.py
    cargo bench --bench pool && python3 benches/pool_python.py && python3 benches/ratios.py
    cargo bench --bench process_pool && python3 benches/process_pool.py && python3 benches/ratios.py
    cargo bench --bench process_shared && python3 benches/process_shared.py && python3 benches/ratios.py
    python3 benches/ratios.py --criterion-dir path/to/target/criterion --strict

The whole report (every bench N times, medians of the runs, BENCHMARKS.md and
its plots) is one command that uses this file's rows and tables:

    python3 benches/report.py --runs 3

Python figures (issues 4 and 5) come from the JSON files that
`benches/pool_python.py` and `benches/process_pool.py` write to
<target>/python-bench/ ({group: {row: ns}}, merged with criterion's medians;
their rows are named `python_*`). When the matching Rust group has results
and a script's JSON is missing, this script runs it (python3, subprocess);
`--run-python` re-runs both first, `--no-run-python` never runs them.

Rows whose benchmarks have not been run show "not run"; each bench can be run alone.
Every ratio is a time ratio, verisync / competitor: below 1 verisync is faster.
A throughput target "≥ k×" is the time target "≤ 1/k×". Standard library only.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

# (group, verisync row, competitor row, target) where target is
#   ("time", r)        verisync's time ≤ r × the competitor's
#   ("throughput", k)  verisync's throughput ≥ k × the competitor's (time ≤ 1/k ×)
#   None               shown for information, no target in the issue
ROWS = [
    ("mutex_uncontended", "verisync", "parking_lot", ("time", 1.1)),
    ("mutex_uncontended", "verisync", "std", None),
    ("mutex_nested_pair", "verisync", "parking_lot", None),
    ("mutex_contended/2", "verisync", "parking_lot", ("throughput", 0.9)),
    ("mutex_contended/4", "verisync", "parking_lot", ("throughput", 0.9)),
    ("mutex_contended/8", "verisync", "parking_lot", ("throughput", 0.9)),
    ("mutex_contended/2", "verisync", "std", None),
    ("mutex_contended/4", "verisync", "std", None),
    ("mutex_contended/8", "verisync", "std", None),
    ("reentrant_uncontended", "verisync", "parking_lot", ("time", 1.2)),
    ("reentrant_uncontended", "verisync_nested", "parking_lot_nested", ("time", 1.2)),
    ("ping_pong_one_cpu", "verisync_condition", "parking_lot_condvar", ("throughput", 0.9)),
    ("ping_pong_one_cpu", "verisync_event", "parking_lot_condvar", ("throughput", 0.9)),
    ("ping_pong_one_cpu", "verisync_condition", "std_condvar", None),
    ("ping_pong_two_cpus", "verisync_condition", "parking_lot_condvar", ("throughput", 0.9)),
    ("ping_pong_two_cpus", "verisync_event", "parking_lot_condvar", ("throughput", 0.9)),
    ("ping_pong_two_cpus", "verisync_condition", "std_condvar", None),
    ("semaphore_uncontended", "verisync", "parking_lot_mutex_condvar", ("time", 0.7)),
    ("semaphore_uncontended", "verisync", "floor_cas_fetch_add", None),
    ("semaphore_contended", "verisync", "parking_lot_mutex_condvar", ("throughput", 1.0)),
    # Issue 3 (benches/queue.rs): time per message, capacity 1024, u64 messages.
    # Each verisync row is held to the baseline with the same guarantee: the
    # rows with `task_done` after every get against the baselines that count
    # tasks as Python's queue.Queue does (`*_task_done`: an unfinished count
    # under the same mutex, a second lock cycle per item), the rows without
    # against the plain baselines. Both pairs carry the target; verisync with
    # `task_done` against a baseline without it is shown for information.
    ("fifo_1p1c", "verisync_task_done", "crossbeam_channel", ("throughput", 0.5)),
    ("fifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_task_done", ("throughput", 1.5)),
    ("fifo_1p1c", "verisync", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("fifo_2p2c", "verisync_task_done", "crossbeam_channel", ("throughput", 0.5)),
    ("fifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_task_done", ("throughput", 1.5)),
    ("fifo_2p2c", "verisync", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    # Issue 16 restates the LIFO and priority targets (replacing issue 3's):
    # "LIFO and priority ≤ 1.0× their same-guarantee baselines in both 1P/1C
    # and 2P/2C, and ≤ 0.67× in 2P/2C". LIFO's are the Mutex<Vec> ones.
    # Priority's are the heaps with FIFO ties (a heap of (item, insertion
    # number)): verisync hands equal items out in insertion order, the plain
    # Mutex<BinaryHeap> does not, so the plain heap's rows are information.
    ("priority_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties_task_done", ("time", 1.0)),
    ("priority_1p1c", "verisync", "parking_lot_mutex_condvar_fifo_ties", ("time", 1.0)),
    ("priority_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties_task_done", ("time", 0.67)),
    ("priority_2p2c", "verisync", "parking_lot_mutex_condvar_fifo_ties", ("time", 0.67)),
    ("lifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_task_done", ("time", 1.0)),
    ("lifo_1p1c", "verisync", "parking_lot_mutex_condvar", ("time", 1.0)),
    ("lifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_task_done", ("time", 0.67)),
    ("lifo_2p2c", "verisync", "parking_lot_mutex_condvar", ("time", 0.67)),
    # For information: with `task_done` against baselines without it (the
    # targets' pairs before the task-counting baselines existed), other
    # channels, and the plain heap.
    ("fifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("fifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("lifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("lifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("priority_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties", None),
    ("priority_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties", None),
    ("priority_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("priority_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("priority_1p1c", "verisync", "parking_lot_mutex_condvar", None),
    ("priority_2p2c", "verisync", "parking_lot_mutex_condvar", None),
    ("fifo_1p1c", "verisync", "crossbeam_channel", None),
    ("fifo_1p1c", "verisync_task_done", "flume", None),
    ("fifo_1p1c", "verisync_task_done", "std_sync_channel", None),
    ("fifo_2p2c", "verisync", "crossbeam_channel", None),
    ("fifo_2p2c", "verisync_task_done", "flume", None),
    ("lifo_one_thread", "verisync_task_done", "parking_lot_mutex_condvar", None),
    ("lifo_one_thread", "verisync", "parking_lot_mutex_condvar", None),
    # Issue 4 (benches/pool.rs, benches/pool_python.py): 2 workers; time per
    # tiny task / per value-returning task / per map item.
    ("tiny_tasks", "verisync_submit", "threadpool_latch", ("throughput", 1.0)),
    ("tiny_tasks", "verisync_submit", "rayon_spawn_latch", ("throughput", 1.0)),
    ("tiny_tasks", "verisync_submit_latch", "threadpool_latch", None),
    ("tiny_tasks", "verisync_submit_latch", "rayon_spawn_latch", None),
    ("tiny_tasks", "verisync_submit", "rayon_scope", None),
    # Issue 16: scoped tiny tasks, verisync's scope against rayon's.
    ("tiny_tasks", "verisync_scope", "rayon_scope", ("throughput", 1.0)),
    ("tiny_tasks", "verisync_submit", "mutex_condvar_pool_latch", None),
    ("tiny_tasks_20k", "verisync_submit", "python_thread_pool_executor", None),
    ("value_tasks", "verisync_join", "threadpool_channel", ("throughput", 1.5)),
    # Issue 16: the ordered, lazy map within 3× of rayon's par_iter per item.
    ("map_1m", "verisync_map", "rayon_par_iter", ("time", 3.0)),
    # Issue 5 (benches/process_pool.rs, benches/process_pool.py): 2 worker
    # processes, Python with the fork start method; time per start-up
    # (constructor to first result) / per tiny task / per map item.
    ("process_pool_tiny_tasks", "verisync_submit_join", "python_ppe_submit_result", ("throughput", 10.0)),
    ("process_pool_tiny_tasks", "verisync_submit_join", "python_mp_pool_apply_async", ("throughput", 3.0)),
    ("process_pool_startup", "verisync", "python_ppe_fork", ("time", 1.0)),
    ("process_pool_startup", "verisync", "python_mp_pool_fork", ("time", 1.0)),
    ("process_pool_map", "verisync_map", "python_ppe_map", None),
    ("process_pool_map", "verisync_map", "python_mp_pool_map_chunksize_1", None),
    # Issue 16: the chunked process map ≤ Python's default-chunksize Pool.map.
    ("process_pool_map", "verisync_map", "python_mp_pool_map_default_chunksize", ("time", 1.0)),
    # Issue 14 (benches/process_shared.rs, benches/process_shared.py): the
    # process-shared Lock and Value; time per lock+unlock / per operation of
    # two contending processes together / per increment.
    ("process_lock_uncontended", "verisync_process_lock", "verisync_mutex", ("time", 2.0)),
    ("process_lock_uncontended", "verisync_process_lock", "python_mp_lock", None),
    ("process_lock_uncontended", "verisync_process_lock", "python_mp_lock_with", None),
    ("process_lock_contended_2", "verisync_process_lock_2_processes", "python_mp_lock_2_processes", None),
    ("process_lock_contended_2", "verisync_process_lock_2_processes", "verisync_mutex_2_threads", None),
    ("process_value_fetch_add", "verisync_fetch_add", "python_mp_value_with_lock", None),
    ("process_value_fetch_add", "verisync_lock_increment", "python_mp_value_with_lock", None),
    # Issue 14: process::JoinableQueue, one producer process and one consumer
    # process (get + task_done), u64 and 1 KiB messages; time per message.
    # Targets: ≥ 20× multiprocessing.Queue's throughput, ≥ 2× a pipe with
    # postcard frames (what the process pool uses).
    ("process_queue_u64", "verisync_process_queue", "python_mp_queue", ("throughput", 20.0)),
    ("process_queue_u64", "verisync_process_queue", "postcard_pipe", ("throughput", 2.0)),
    ("process_queue_u64", "verisync_process_queue", "python_mp_joinable_queue", None),
    ("process_queue_u64", "verisync_process_queue", "verisync_thread_queue_2_threads", None),
    ("process_queue_1k", "verisync_process_queue", "python_mp_queue", ("throughput", 20.0)),
    ("process_queue_1k", "verisync_process_queue", "postcard_pipe", ("throughput", 2.0)),
    ("process_queue_1k", "verisync_process_queue", "python_mp_joinable_queue", None),
    ("process_queue_1k", "verisync_process_queue", "verisync_thread_queue_2_threads", None),
]

# The Python halves: (script, JSON it writes, a criterion group whose presence
# means the Rust half has been run).
PYTHON_SCRIPTS = [
    ("pool_python.py", "pool_python.json", "tiny_tasks_20k"),
    ("process_pool.py", "process_pool.json", "process_pool_tiny_tasks"),
    ("process_shared.py", "process_shared.json", "process_lock_uncontended"),
]


def default_target_dir():
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        target = os.path.join(repo, "target")
    return target


def default_criterion_dir():
    return os.path.join(default_target_dir(), "criterion")


def load_python(python_dir, medians, run):
    """Merges the Python scripts' figures into `medians`; runs a script when
    `run` is "always", or when "missing" and its JSON is missing while its
    Rust group has results. Returns one note line per file read."""
    notes = []
    benches = os.path.dirname(os.path.abspath(__file__))
    for script, name, rust_group in PYTHON_SCRIPTS:
        path = os.path.join(python_dir, name)
        rust_ran = any(group == rust_group for group, _ in medians)
        if run == "always" or (run == "missing" and rust_ran and not os.path.exists(path)):
            print(f"running python3 benches/{script} ...", file=sys.stderr, flush=True)
            env = dict(os.environ, CARGO_TARGET_DIR=os.path.dirname(python_dir))
            subprocess.run([sys.executable or "python3", os.path.join(benches, script)],
                           check=True, stdout=sys.stderr, env=env)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        for group, rows in data.get("groups", {}).items():
            for row, ns in rows.items():
                medians[(group, row)] = ns
        notes.append(f"{data.get('script', script)}: Python {data.get('python', '?')}, "
                     f"measured {data.get('measured_at', '?')} ({path})")
    return notes


def load_medians(criterion_dir, baseline="new"):
    """{(group, row): median ns per iteration} for every saved benchmark:
    criterion's latest run (`new`), or a run saved with `--save-baseline NAME`."""
    medians = {}
    pattern = os.path.join(criterion_dir, "*", "*", baseline, "estimates.json")
    for estimates_path in sorted(glob.glob(pattern)):
        new_dir = os.path.dirname(estimates_path)
        row_dir = os.path.dirname(new_dir)
        group, row = os.path.basename(os.path.dirname(row_dir)), os.path.basename(row_dir)
        try:
            with open(os.path.join(new_dir, "benchmark.json")) as f:
                meta = json.load(f)
            group = meta.get("group_id") or group
            row = meta.get("function_id") or row
        except (OSError, ValueError):
            pass  # fall back to the (filename-safe) directory names
        with open(estimates_path) as f:
            medians[(group, row)] = json.load(f)["median"]["point_estimate"]
    return medians


def fmt_time(ns):
    if ns is None:
        return "—"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def fmt_target(target):
    if target is None:
        return "— (info)"
    kind, value = target
    if kind == "time":
        return f"time ≤ {value:.2f}×"
    return f"throughput ≥ {value:.2f}× (time ≤ {1 / value:.2f}×)"


def limit_of(target):
    """The largest time ratio that meets `target` (None: no target)."""
    if target is None:
        return None
    kind, value = target
    return value if kind == "time" else 1 / value


def evaluate(medians, group, ours, theirs, target):
    """One row of ROWS against `medians`: (verisync's median, the
    competitor's, their ratio, the result text, whether it missed), with
    None where a median is missing."""
    mine, other = medians.get((group, ours)), medians.get((group, theirs))
    if mine is None or other is None:
        return mine, other, None, "not run", False
    ratio = mine / other
    limit = limit_of(target)
    if limit is None:
        return mine, other, ratio, "—", False
    if ratio <= limit:
        return mine, other, ratio, "pass", False
    return mine, other, ratio, f"**FAIL** (by {ratio / limit - 1:.0%})", True


def ratio_table(medians, rows=None):
    """The markdown table of ROWS (or `rows`): medians, ratio, target,
    pass/fail. Returns its lines and how many targets were missed."""
    lines = [
        "| benchmark | verisync | competitor | verisync median | competitor median "
        "| time ratio (verisync/competitor, < 1 = verisync faster) | target | result |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    missed = 0
    for group, ours, theirs, target in rows or ROWS:
        mine, other, ratio, result, miss = evaluate(medians, group, ours, theirs, target)
        missed += miss
        ratio_text = "—" if ratio is None else f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.3f}×"
        lines.append(f"| {group} | {ours} | {theirs} | {fmt_time(mine)} | {fmt_time(other)} "
                     f"| {ratio_text} | {fmt_target(target)} | {result} |")
    return lines, missed


def all_rows_table(medians):
    """The markdown table of every median, anchors and floors included."""
    lines = ["| group | row | median |", "|---|---|---:|"]
    for (group, row), ns in sorted(medians.items()):
        lines.append(f"| {group} | {row} | {fmt_time(ns)} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion-dir", default=default_criterion_dir())
    parser.add_argument("--python-dir", default=None,
                        help="where the Python scripts' JSON is (default <target>/python-bench)")
    parser.add_argument("--run-python", action="store_true",
                        help="re-run benches/pool_python.py and benches/process_pool.py first")
    parser.add_argument("--no-run-python", action="store_true",
                        help="never run the Python scripts; use their JSON if present")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    medians = load_medians(args.criterion_dir)
    if not medians:
        sys.exit(f"no criterion results under {args.criterion_dir}; run `cargo bench --bench locks` "
                 "(or queue, pool, process_pool) first")
    python_dir = args.python_dir or os.path.join(os.path.dirname(os.path.abspath(args.criterion_dir)),
                                                 "python-bench")
    run = "never" if args.no_run_python else "always" if args.run_python else "missing"
    python_notes = load_python(python_dir, medians, run)

    lines, missed = ratio_table(medians)
    print("\n".join(lines))
    if python_notes:
        print()
        print("Python rows (`python_*`) from: " + "; ".join(python_notes))
    print()
    print("All rows (median time per iteration; anchors and floors included):")
    print()
    print("\n".join(all_rows_table(medians)))

    if args.strict and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()

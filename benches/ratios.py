#!/usr/bin/env python3
"""Ratio table for `benches/locks.rs` and `benches/queue.rs`, against the targets of issues 2 and 3.

Reads criterion's saved medians (target/criterion/<group>/<row>/new/estimates.json,
named by the benchmark.json next to each) and prints a markdown table:
verisync's median, the competitor's median from the same run, their time ratio
and the target with pass/fail. Then a table of every row's median (anchors too).

    cargo bench --bench locks && python3 benches/ratios.py
    cargo bench --bench queue && python3 benches/ratios.py
    python3 benches/ratios.py --criterion-dir path/to/target/criterion --strict

Rows whose benchmarks have not been run show "not run"; each bench can be run alone.
Every ratio is a time ratio, verisync / competitor: below 1 verisync is faster.
A throughput target "≥ k×" is the time target "≤ 1/k×". Standard library only.
"""

import argparse
import glob
import json
import os
import sys

# (group, verisync row, competitor row, target) where target is
#   ("time", r)        verisync's time ≤ r × the competitor's
#   ("throughput", k)  verisync's throughput ≥ k × the competitor's (time ≤ 1/k ×)
#   None               shown for information, no target in the issue
ROWS = [
    ("mutex_uncontended", "verisync", "parking_lot", ("time", 1.1)),
    ("mutex_uncontended", "verisync", "std", None),
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
    # Targets are for verisync with `task_done` after every get.
    ("fifo_1p1c", "verisync_task_done", "crossbeam_channel", ("throughput", 0.5)),
    ("fifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("fifo_2p2c", "verisync_task_done", "crossbeam_channel", ("throughput", 0.5)),
    ("fifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("priority_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("priority_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("lifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("lifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar", ("throughput", 1.5)),
    ("fifo_1p1c", "verisync", "crossbeam_channel", None),
    ("fifo_1p1c", "verisync", "parking_lot_mutex_condvar", None),
    ("fifo_1p1c", "verisync_task_done", "flume", None),
    ("fifo_1p1c", "verisync_task_done", "std_sync_channel", None),
    ("fifo_2p2c", "verisync", "crossbeam_channel", None),
    ("fifo_2p2c", "verisync", "parking_lot_mutex_condvar", None),
    ("fifo_2p2c", "verisync_task_done", "flume", None),
    ("priority_1p1c", "verisync", "parking_lot_mutex_condvar", None),
    ("priority_2p2c", "verisync", "parking_lot_mutex_condvar", None),
    ("lifo_1p1c", "verisync", "parking_lot_mutex_condvar", None),
    ("lifo_2p2c", "verisync", "parking_lot_mutex_condvar", None),
]


def default_criterion_dir():
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        target = os.path.join(repo, "target")
    return os.path.join(target, "criterion")


def load_medians(criterion_dir):
    """{(group, row): median ns per iteration} for every saved benchmark."""
    medians = {}
    pattern = os.path.join(criterion_dir, "*", "*", "new", "estimates.json")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion-dir", default=default_criterion_dir())
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    medians = load_medians(args.criterion_dir)
    if not medians:
        sys.exit(f"no criterion results under {args.criterion_dir}; run `cargo bench --bench locks` or `--bench queue` first")

    print("| benchmark | verisync | competitor | verisync median | competitor median "
          "| time ratio (verisync/competitor, < 1 = verisync faster) | target | result |")
    print("|---|---|---|---:|---:|---:|---|---|")
    missed = 0
    for group, ours, theirs, target in ROWS:
        mine, other = medians.get((group, ours)), medians.get((group, theirs))
        if mine is None or other is None:
            ratio_text, result = "—", "not run"
        else:
            ratio = mine / other
            ratio_text = f"{ratio:.2f}×"
            if target is None:
                result = "—"
            else:
                kind, value = target
                limit = value if kind == "time" else 1 / value
                if ratio <= limit:
                    result = "pass"
                else:
                    result = f"**FAIL** (by {ratio / limit - 1:.0%})"
                    missed += 1
        print(f"| {group} | {ours} | {theirs} | {fmt_time(mine)} | {fmt_time(other)} "
              f"| {ratio_text} | {fmt_target(target)} | {result} |")

    print()
    print("All rows (median time per iteration; anchors and floors included):")
    print()
    print("| group | row | median |")
    print("|---|---|---:|")
    for (group, row), ns in sorted(medians.items()):
        print(f"| {group} | {row} | {fmt_time(ns)} |")

    if args.strict and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()

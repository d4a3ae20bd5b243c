#!/usr/bin/env python3
"""Runs every benchmark N times and writes BENCHMARKS.md with plots (issue 16).

One command, from the repository's root:

    python3 benches/report.py --runs 3        # the published report: about an hour
    python3 benches/report.py --quick-smoke   # checks the pipeline in a few minutes

What it does:

1. Records the machine: CPU model (/proc/cpuinfo), logical CPUs and cores,
   kernel (`uname -r`), `rustc -V`, Python, the date, the commit, and the
   load average before and after (a loaded machine's numbers say little).
2. Runs, N times over, every bench in turn (`cargo bench --bench locks`,
   `queue`, `pool`, `process_pool`, `process_shared`, each a full criterion
   run saved with `--save-baseline report-runK`), then the Python scripts
   beside them (`pool_python.py`, `process_pool.py`, `process_shared.py`;
   their JSON is copied into the run's
   folder). Every run's medians are kept in target/bench-report/runK.json.
3. Takes each row's median over the N runs (of criterion's per-run median),
   and writes BENCHMARKS.md: the machine, the ratio table of
   `benches/ratios.py` (its rows, targets and table code, with the ratio of
   every run beside the median's), every row's median, and the plots.
4. Draws the plots with the plotters crate (`benches/plot/`, a crate of its
   own, SVG only): ratio bars per primitive (`ratios.svg`), and throughput
   against thread count for the mutex (`mutex_throughput.svg`, 2/4/8
   threads) and the queues (`queue_throughput.svg`, 1P/1C and 2P/2C).

`--quick-smoke` runs each bench once with criterion's `--quick` (each row
until its estimate settles, at least 0.1 s) and writes to
target/bench-report/ unless --out/--plots-dir say otherwise; its
BENCHMARKS.md and every plot title say "SMOKE RUN — not measurements".
`--from-saved` redraws the report from the saved runs without running
anything. Run it on a quiet machine: nothing else busy, on mains power.
Standard library only (plus cargo for the benches and the plots).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ratios  # noqa: E402  (beside this file)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = ["locks", "queue", "pool", "process_pool", "process_shared"]
# The Python halves: which bench they belong to, and the JSON they write.
PYTHON_SCRIPTS = {
    "pool": ("pool_python.py", "pool_python.json"),
    "process_pool": ("process_pool.py", "process_pool.json"),
    "process_shared": ("process_shared.py", "process_shared.json"),
}
SMOKE_BANNER = "SMOKE RUN — not measurements"
# Queue groups in the throughput plot: (panel title, group prefix).
QUEUE_PANELS = [("FIFO", "fifo"), ("LIFO", "lifo"), ("priority", "priority")]
MUTEX_ROWS = ["verisync", "parking_lot", "std"]
# Group name prefix → primitive (ratio plot labels; ROWS is already in this order).
PRIMITIVES = [
    ("mutex", "Mutex"), ("reentrant", "ReentrantLock"), ("ping_pong", "Condition/Event"),
    ("semaphore", "Semaphore"), ("fifo", "JoinableQueue"), ("lifo", "JoinableQueue"),
    ("priority", "JoinableQueue"), ("tiny_tasks", "ThreadPool"), ("value_tasks", "ThreadPool"),
    ("map_1m", "ThreadPool"), ("process_pool", "ProcessPool"),
    ("process_lock", "process::Lock"), ("process_value", "process::Value"),
    ("process_queue", "process::JoinableQueue"),
]


def run(command, **kwargs):
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=REPO, **kwargs)


def output(command):
    try:
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine():
    """What the numbers were measured on."""
    model, cores = platform.processor() or "?", set()
    physical = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name":
                    model = value
                elif key == "physical id":
                    physical = value
                elif key == "core id":
                    cores.add((physical, value))
    except OSError:
        pass
    dirty = output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "cores": len(cores) or None,
        "kernel": platform.release(),
        "rustc": output(["rustc", "-V"]),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": output(["git", "rev-parse", "--short", "HEAD"]) + (" (with local changes)" if dirty else ""),
        "load_before": load_average(),
    }


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "?"


def measure(runs, benches, smoke, report_dir, criterion_dir, target_dir, merge=False):
    """Runs the benches `runs` times; returns each run's medians.

    With `merge`, the saved runs are kept and each run's new medians replace
    theirs row by row (the benches not named keep their earlier figures)."""
    if not merge:
        # Nothing of an earlier report may pass for this one's.
        for name in os.listdir(report_dir):
            path = os.path.join(report_dir, name)
            if name.startswith("run"):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        for group in glob.glob(os.path.join(criterion_dir, "*", "*", "report-run*")):
            shutil.rmtree(group)
    criterion_args = ["--noplot"] + (["--quick"] if smoke else [])
    per_run = []
    for k in range(1, runs + 1):
        baseline = f"report-run{k}"
        for bench in benches:
            run(["cargo", "bench", "--bench", bench, "--", "--save-baseline", baseline]
                + criterion_args)
        run_dir = os.path.join(report_dir, f"run{k}")
        os.makedirs(run_dir, exist_ok=True)
        for bench in benches:
            if bench not in PYTHON_SCRIPTS:
                continue
            script, written = PYTHON_SCRIPTS[bench]
            run([sys.executable or "python3", os.path.join("benches", script)],
                env=dict(os.environ, CARGO_TARGET_DIR=target_dir))
            shutil.copy(os.path.join(target_dir, "python-bench", written), run_dir)
        medians = ratios.load_medians(criterion_dir, baseline)
        ratios.load_python(run_dir, medians, "never")
        saved = os.path.join(report_dir, f"run{k}.json")
        if merge and os.path.exists(saved):
            with open(saved) as f:
                merged = decode(json.load(f))
            merged.update(medians)
            medians = merged
        per_run.append(medians)
        with open(os.path.join(report_dir, f"run{k}.json"), "w") as f:
            json.dump(encode(medians), f, indent=1)
    return per_run


def encode(medians):
    return {f"{group}\t{row}": ns for (group, row), ns in sorted(medians.items())}


def decode(data):
    return {tuple(key.split("\t", 1)): ns for key, ns in data.items()}


def load_saved(report_dir):
    per_run, k = [], 1
    while os.path.exists(os.path.join(report_dir, f"run{k}.json")):
        with open(os.path.join(report_dir, f"run{k}.json")) as f:
            per_run.append(decode(json.load(f)))
        k += 1
    return per_run


def median_of_runs(per_run):
    keys = {key for medians in per_run for key in medians}
    return {key: statistics.median(m[key] for m in per_run if key in m) for key in keys}


def each_run_ratio(per_run, group, ours, theirs):
    """A row's ratio in each run that measured both sides."""
    return [m[(group, ours)] / m[(group, theirs)] for m in per_run
            if (group, ours) in m and (group, theirs) in m]


def run_ratios(per_run):
    """For every row of ratios.ROWS: its ratio in each run, as text."""
    spread = {}
    for group, ours, theirs, _ in ratios.ROWS:
        each = each_run_ratio(per_run, group, ours, theirs)
        spread[(group, ours, theirs)] = ", ".join(f"{ratio:.2f}" for ratio in each) or "—"
    return spread


def runs_meeting(per_run, group, ours, theirs, target):
    """"k of n": in how many runs the row met its target ("—" without one)."""
    limit = ratios.limit_of(target)
    each = each_run_ratio(per_run, group, ours, theirs)
    if limit is None or not each:
        return "—"
    return f"{sum(ratio <= limit for ratio in each)} of {len(each)}"


# The README's short table: the rows with a target, in words.
README_LABELS = {
    ("mutex_uncontended", "verisync", "parking_lot"): ("`Mutex` lock+unlock, uncontended", "parking_lot"),
    ("mutex_contended/2", "verisync", "parking_lot"): ("`Mutex`, 2 threads incrementing", "parking_lot"),
    ("mutex_contended/4", "verisync", "parking_lot"): ("`Mutex`, 4 threads", "parking_lot"),
    ("mutex_contended/8", "verisync", "parking_lot"): ("`Mutex`, 8 threads", "parking_lot"),
    ("reentrant_uncontended", "verisync", "parking_lot"): ("`ReentrantLock` lock+unlock", "parking_lot `ReentrantMutex`"),
    ("reentrant_uncontended", "verisync_nested", "parking_lot_nested"): ("`ReentrantLock`, nested", "parking_lot `ReentrantMutex`"),
    ("ping_pong_one_cpu", "verisync_condition", "parking_lot_condvar"): ("`Condition` ping-pong, one CPU", "parking_lot `Condvar`"),
    ("ping_pong_one_cpu", "verisync_event", "parking_lot_condvar"): ("`Event` ping-pong, one CPU", "parking_lot `Condvar`"),
    ("ping_pong_two_cpus", "verisync_condition", "parking_lot_condvar"): ("`Condition` ping-pong, two CPUs", "parking_lot `Condvar`"),
    ("ping_pong_two_cpus", "verisync_event", "parking_lot_condvar"): ("`Event` ping-pong, two CPUs", "parking_lot `Condvar`"),
    ("semaphore_uncontended", "verisync", "parking_lot_mutex_condvar"): ("`Semaphore`, uncontended", "Mutex+Condvar semaphore"),
    ("semaphore_contended", "verisync", "parking_lot_mutex_condvar"): ("`Semaphore`, 4 threads over 2 permits", "Mutex+Condvar semaphore"),
    ("fifo_1p1c", "verisync_task_done", "crossbeam_channel"): ("`JoinableQueue` FIFO 1P/1C, `task_done`", "crossbeam-channel"),
    ("fifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_task_done"): ("FIFO 1P/1C, `task_done`", "Mutex<VecDeque>+Condvars, task counting"),
    ("fifo_1p1c", "verisync", "parking_lot_mutex_condvar"): ("FIFO 1P/1C", "Mutex<VecDeque>+Condvars"),
    ("fifo_2p2c", "verisync_task_done", "crossbeam_channel"): ("FIFO 2P/2C, `task_done`", "crossbeam-channel"),
    ("fifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_task_done"): ("FIFO 2P/2C, `task_done`", "Mutex<VecDeque>+Condvars, task counting"),
    ("fifo_2p2c", "verisync", "parking_lot_mutex_condvar"): ("FIFO 2P/2C", "Mutex<VecDeque>+Condvars"),
    ("priority_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties_task_done"): ("priority 1P/1C, `task_done`", "Mutex<BinaryHeap> (ties in order)+Condvars, task counting"),
    ("priority_1p1c", "verisync", "parking_lot_mutex_condvar_fifo_ties"): ("priority 1P/1C", "Mutex<BinaryHeap> (ties in order)+Condvars"),
    ("priority_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_fifo_ties_task_done"): ("priority 2P/2C, `task_done`", "the same, task counting"),
    ("priority_2p2c", "verisync", "parking_lot_mutex_condvar_fifo_ties"): ("priority 2P/2C", "the same"),
    ("lifo_1p1c", "verisync_task_done", "parking_lot_mutex_condvar_task_done"): ("LIFO 1P/1C, `task_done`", "Mutex<Vec>+Condvars, task counting"),
    ("lifo_1p1c", "verisync", "parking_lot_mutex_condvar"): ("LIFO 1P/1C", "Mutex<Vec>+Condvars"),
    ("lifo_2p2c", "verisync_task_done", "parking_lot_mutex_condvar_task_done"): ("LIFO 2P/2C, `task_done`", "Mutex<Vec>+Condvars, task counting"),
    ("lifo_2p2c", "verisync", "parking_lot_mutex_condvar"): ("LIFO 2P/2C", "Mutex<Vec>+Condvars"),
    ("tiny_tasks", "verisync_submit", "threadpool_latch"): ("`ThreadPool`, 100,000 tiny tasks", "threadpool"),
    ("tiny_tasks", "verisync_submit", "rayon_spawn_latch"): ("the same", "rayon spawn+latch"),
    ("tiny_tasks", "verisync_scope", "rayon_scope"): ("`ThreadPool::scope`, tiny tasks", "rayon `scope`"),
    ("value_tasks", "verisync_join", "threadpool_channel"): ("`ThreadPool`, tasks returning values", "threadpool + a channel each"),
    ("map_1m", "verisync_map", "rayon_par_iter"): ("`ThreadPool::map`, 1M cheap items", "rayon `par_iter`"),
    ("process_pool_tiny_tasks", "verisync_submit_join", "python_ppe_submit_result"): ("`ProcessPool`, 5,000 tiny tasks", "Python `ProcessPoolExecutor`"),
    ("process_pool_tiny_tasks", "verisync_submit_join", "python_mp_pool_apply_async"): ("the same", "Python `multiprocessing.Pool`"),
    ("process_pool_startup", "verisync", "python_ppe_fork"): ("`ProcessPool` start-up", "Python `ProcessPoolExecutor` (fork)"),
    ("process_pool_startup", "verisync", "python_mp_pool_fork"): ("the same", "Python `multiprocessing.Pool` (fork)"),
    ("process_pool_map", "verisync_map", "python_mp_pool_map_default_chunksize"): ("`ProcessPool::map`, 5,000 tiny items", "Python `Pool.map`, default chunksize"),
    ("process_lock_uncontended", "verisync_process_lock", "verisync_mutex"): ("`process::Lock`, uncontended", "the thread `Mutex`"),
    ("process_queue_u64", "verisync_process_queue", "python_mp_queue"): ("`process::JoinableQueue`, u64", "Python `multiprocessing.Queue`"),
    ("process_queue_u64", "verisync_process_queue", "postcard_pipe"): ("the same", "a pipe of postcard frames"),
    ("process_queue_1k", "verisync_process_queue", "python_mp_queue"): ("`process::JoinableQueue`, 1 KiB", "Python `multiprocessing.Queue`"),
    ("process_queue_1k", "verisync_process_queue", "postcard_pipe"): ("the same", "a pipe of postcard frames"),
}


def readme_table(per_run):
    """The README's short table (markdown lines): every row with a target,
    its median time ratio, the target, and in how many runs it was met."""
    medians = median_of_runs(per_run)
    lines = ["| what | against | time ratio | target | met (runs) |",
             "|---|---|---:|---|---|"]
    for group, ours, theirs, target in ratios.ROWS:
        if target is None:
            continue
        what, against = README_LABELS.get((group, ours, theirs), (f"{group} {ours}", theirs))
        _, _, ratio, result, missed = ratios.evaluate(medians, group, ours, theirs, target)
        if ratio is None:
            lines.append(f"| {what} | {against} | — | ≤ {ratios.limit_of(target):.2f}× | not run |")
            continue
        each = each_run_ratio(per_run, group, ours, theirs)
        met = sum(run_ratio <= ratios.limit_of(target) for run_ratio in each)
        mark = "✗" if missed else ("✓" if met == len(each) else "✓ median only")
        shown = f"{ratio:.3f}" if ratio < 0.1 else f"{ratio:.2f}"
        lines.append(f"| {what} | {against} | {shown}× | ≤ {ratios.limit_of(target):.2f}× "
                     f"| {mark} ({met} of {len(each)}) |")
    return lines


def primitive_of(group):
    """The primitive a criterion group measures, for the ratio plot's labels."""
    for prefix, primitive in PRIMITIVES:
        if group.startswith(prefix):
            return primitive
    return group


def plot_data(medians, info, banner):
    """The JSON `benches/plot` draws from."""
    bars = []
    for group, ours, theirs, target in ratios.ROWS:
        mine, other, ratio, _, _ = ratios.evaluate(medians, group, ours, theirs, target)
        if target is None or ratio is None:
            continue
        bars.append({"label": f"{primitive_of(group)} · {group}: {ours} vs {theirs}", "ratio": ratio,
                     "limit": ratios.limit_of(target)})

    def series(group_of_threads, rows):
        """One series per row: (threads, M operations per second)."""
        found = []
        for row in rows:
            points = [[threads, 1e3 / medians[(group, row)]]
                      for threads, group in group_of_threads if (group, row) in medians]
            if points:
                found.append({"name": row, "points": points})
        return found

    mutex_groups = [(threads, f"mutex_contended/{threads}") for threads in (2, 4, 8)]
    queue_panels = []
    for title, prefix in QUEUE_PANELS:
        groups = [(2, f"{prefix}_1p1c"), (4, f"{prefix}_2p2c")]
        rows = sorted({row for (group, row) in medians for _, g in groups if group == g})
        queue_panels.append({"title": title, "series": series(groups, rows)})
    machine_line = f"{info['cpu']}, {info['logical_cpus']} CPUs, Linux {info['kernel']}, {info['rustc']}"
    return {
        "banner": banner,
        "machine": machine_line,
        "ratios": bars,
        "figures": [
            {"file": "mutex_throughput.svg",
             "title": "Mutex: a shared counter incremented by N threads",
             "x_label": "threads", "y_label": "million increments per second",
             "panels": [{"title": "Mutex", "series": series(mutex_groups, MUTEX_ROWS)}]},
            {"file": "queue_throughput.svg",
             "title": "Queues: N/2 producers and N/2 consumers, capacity 1024",
             "x_label": "threads (producers + consumers)", "y_label": "million messages per second",
             "panels": queue_panels},
        ],
    }


def draw_plots(data, report_dir, plots_dir):
    path = os.path.join(report_dir, "plots.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    run(["cargo", "run", "--quiet", "--release", "--manifest-path",
         os.path.join("benches", "plot", "Cargo.toml"), "--", path, plots_dir])


def write_markdown(path, per_run, info, smoke, plots_dir, command):
    medians = median_of_runs(per_run)
    table, missed = ratios.ratio_table(medians)
    spread = run_ratios(per_run)
    # The ratio of each run, beside the median's.
    table[0] += " ratio in each run | runs meeting the target |"
    table[1] += "---|---|"
    for index, (group, ours, theirs, target) in enumerate(ratios.ROWS):
        table[index + 2] += (f" {spread[(group, ours, theirs)]} "
                             f"| {runs_meeting(per_run, group, ours, theirs, target)} |")
    plots = os.path.relpath(plots_dir, os.path.dirname(os.path.abspath(path)))
    runs = len(per_run)
    lines = ["# verisync benchmarks", ""]
    if smoke:
        lines += [f"> **{SMOKE_BANNER}.** Every bench ran once with criterion's `--quick` on "
                  "whatever else the machine was doing: these figures show that the report "
                  "pipeline works, and nothing about speed. The published report comes from "
                  "`python3 benches/report.py --runs 3` on a quiet machine.", ""]
    lines += [
        f"Written by `{command}` on {info['date']} from commit {info['commit']}: "
        f"{runs} {'run' if runs == 1 else 'runs'} of every bench "
        f"({'criterion --quick' if smoke else 'full criterion runs'}); each figure is the median "
        "over the runs of criterion's median time per iteration, and each ratio is verisync's "
        "figure over its competitor's (below 1×, verisync is faster). The Python figures come "
        "from `benches/pool_python.py`, `benches/process_pool.py` and "
        "`benches/process_shared.py`, run after the Rust benches in each run. What each row "
        "measures, and why some rows are what they are, is under \"About the rows\" at the end "
        "(from `benches/NOTES.md`).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| CPUs | {info['logical_cpus']} logical"
        + (f", {info['cores']} cores |" if info.get("cores") else " |"),
        f"| kernel | {info['kernel']} |",
        f"| rustc | {info['rustc']} |",
        f"| Python | {info['python']} |",
        f"| load average (1, 5, 15 min) before / after | {info['load_before']} / "
        f"{info.get('load_after', '?')} |",
        "",
    ]
    parts = info.get("parts") or []
    if len(parts) > 1:
        lines += ["The benches were measured in parts (`--merge`), all on this machine:", "",
                  "| benches | date | commit | load before / after |", "|---|---|---|---|"]
        lines += [f"| {', '.join(part['benches'])} | {part['date']} | {part['commit']} "
                  f"| {part['load_before']} / {part.get('load_after', '?')} |" for part in parts]
        lines += [""]
    lines += [
        "## Ratios and targets",
        "",
        f"{len(ratios.ROWS)} compared rows, targets from issues 2–5 and 16 "
        f"(`benches/ratios.py`): {missed} missed.",
        "",
        *table,
        "",
        "## Plots",
        "",
        f"![time ratio of each compared row]({plots}/ratios.svg)",
        "",
        f"![mutex throughput against threads]({plots}/mutex_throughput.svg)",
        "",
        f"![queue throughput against threads]({plots}/queue_throughput.svg)",
        "",
        "## Every row",
        "",
        "Median over the runs of each row's median time per iteration (anchors and floors "
        "included; the benches' own doc comments say what one iteration is).",
        "",
        *ratios.all_rows_table(medians),
        "",
    ]
    notes = os.path.join(REPO, "benches", "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["## About the rows", "", f.read().strip(), ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return missed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="full runs of every bench (default 3)")
    parser.add_argument("--quick-smoke", action="store_true",
                        help="one run with criterion --quick, to check the pipeline; "
                             "marked SMOKE RUN everywhere")
    parser.add_argument("--benches", default=",".join(BENCHES),
                        help=f"comma-separated, default {','.join(BENCHES)}")
    parser.add_argument("--from-saved", action="store_true",
                        help="run nothing; redraw from target/bench-report/run*.json")
    parser.add_argument("--out", help="default BENCHMARKS.md (smoke: target/bench-report/)")
    parser.add_argument("--plots-dir", help="default benches/plots (smoke: target/bench-report/)")
    parser.add_argument("--no-plots", action="store_true", help="skip drawing the SVGs")
    parser.add_argument("--merge", action="store_true",
                        help="keep the saved runs and replace only the rows of --benches "
                             "(each part's machine state is recorded in the report)")
    args = parser.parse_args()

    target_dir = ratios.default_target_dir()
    criterion_dir = os.path.join(target_dir, "criterion")
    report_dir = os.path.join(target_dir, "bench-report")
    os.makedirs(report_dir, exist_ok=True)
    meta_path = os.path.join(report_dir, "meta.json")

    if args.from_saved:
        with open(meta_path) as f:
            meta = json.load(f)
        info, smoke, command = meta["machine"], meta["smoke"], meta["command"]
        per_run = load_saved(report_dir)
        if not per_run:
            sys.exit(f"no saved runs in {report_dir}")
    else:
        smoke = args.quick_smoke
        runs = 1 if smoke else args.runs
        if runs < 1:
            sys.exit("--runs must be at least 1")
        benches = [name for name in args.benches.split(",") if name]
        unknown = set(benches) - set(BENCHES)
        if unknown:
            sys.exit(f"unknown benches: {', '.join(sorted(unknown))}")
        command = "python3 benches/report.py " + (
            "--quick-smoke" if smoke else f"--runs {runs}")
        info = machine()
        parts = []
        if args.merge:
            if smoke or not os.path.exists(meta_path):
                sys.exit("--merge needs the saved full runs of an earlier report")
            with open(meta_path) as f:
                meta = json.load(f)
            if len(load_saved(report_dir)) != runs:
                sys.exit(f"--merge: the saved report has a different number of runs than {runs}")
            parts = meta.get("parts") or [dict(meta["machine"], benches=BENCHES)]
        per_run = measure(runs, benches, smoke, report_dir, criterion_dir, target_dir, args.merge)
        info["load_after"] = load_average()
        info["benches"] = benches
        # A bench measured again replaces its earlier part.
        parts = [dict(part, benches=[b for b in part["benches"] if b not in benches])
                 for part in parts]
        parts = [part for part in parts if part["benches"]] + [info]
        info = dict(info, parts=parts)
        with open(meta_path, "w") as f:
            json.dump({"machine": info, "smoke": smoke, "command": command, "parts": parts},
                      f, indent=1)

    default_out = os.path.join(report_dir, "BENCHMARKS.smoke.md") if smoke \
        else os.path.join(REPO, "BENCHMARKS.md")
    default_plots = os.path.join(report_dir, "plots-smoke") if smoke \
        else os.path.join(REPO, "benches", "plots")
    out, plots_dir = args.out or default_out, args.plots_dir or default_plots
    banner = SMOKE_BANNER if smoke else None
    if not args.no_plots:
        draw_plots(plot_data(median_of_runs(per_run), info, banner), report_dir,
                   os.path.abspath(plots_dir))
    missed = write_markdown(out, per_run, info, smoke, plots_dir, command)
    short = os.path.join(report_dir, "README-table.md")
    with open(short, "w") as f:
        f.write("\n".join(readme_table(per_run)) + "\n")
    print(f"wrote {out} ({missed} targets missed; the README's short table: {short}); "
          f"plots in {plots_dir}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Merge Google Benchmark JSON files into Boong's bench-results.json.

    merge_bench.py -o build/bench-results.json bench_a.json bench_b.json ...

Boong's benchmarks report their figures as Google Benchmark user counters.
Each counter of each benchmark becomes one entry

    {"name": "<benchmark name>/<counter>", "value": <number>, "unit": "<unit>"}

with the unit taken from the counter's name:

    <thing>_per_s, <thing>_per_second  ->  "<thing>/s"   (sagas_per_s -> "sagas/s")
    allocs_per_saga                    ->  "allocations/saga"
    <thing>_per_<what>                 ->  "<thing>/<what>"
    *_ns, *_us, *_ms                   ->  "ns", "us", "ms"
    *_bytes                            ->  "bytes"

Counters named <x>_baseline and <x>_ratio are not entries of their own: they
become the "baseline" and "ratio" keys of <x>'s entry. A benchmark without user
counters gets a "<name>/real_time" entry in its own time unit instead. With
repetitions, the median aggregate is used (the mean if there is no median).

Prints a table of the merged results. Exits 1 if an input could not be read or
a benchmark reported an error (the output file is written all the same).
"""

import argparse
import json
import math
import sys

# Fields Google Benchmark writes for every run; every other numeric key is a
# user counter (bytes_per_second / items_per_second are counters too).
STANDARD_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time",
    "cpu_time", "time_unit", "aggregate_name", "aggregate_unit", "label",
    "error_occurred", "error_message", "skipped", "skip_message",
    "big_o", "rms", "complexity_n",
}

EXACT_UNITS = {"allocs_per_saga": "allocations/saga"}
RATE_SUFFIXES = ("_per_second", "_per_s")
PLAIN_SUFFIXES = (("_ns", "ns"), ("_us", "us"), ("_ms", "ms"), ("_bytes", "bytes"))
THING_NAMES = {"allocs": "allocations"}
ATTACHED = ("baseline", "ratio")


def unit_for(counter):
    if counter in EXACT_UNITS:
        return EXACT_UNITS[counter]
    for suffix in RATE_SUFFIXES:
        if counter.endswith(suffix) and len(counter) > len(suffix):
            thing = counter[: -len(suffix)]
            return THING_NAMES.get(thing, thing) + "/s"
    for suffix, unit in PLAIN_SUFFIXES:
        if counter.endswith(suffix):
            return unit
    if "_per_" in counter:
        thing, per = counter.rsplit("_per_", 1)
        if thing and per:
            return f"{THING_NAMES.get(thing, thing)}/{per}"
    return ""


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def failed(run):
    return bool(run.get("error_occurred")) or bool(run.get("skipped"))


def pick_runs(benchmarks):
    """One run per benchmark: the median (or mean) aggregate, else the last run."""
    groups = {}
    for run in benchmarks:
        groups.setdefault(run.get("run_name") or run["name"], []).append(run)
    for name, runs in groups.items():
        aggregates = {r.get("aggregate_name"): r for r in runs if r.get("run_type") == "aggregate"}
        chosen = aggregates.get("median") or aggregates.get("mean")
        if chosen is None:
            chosen = [r for r in runs if r.get("run_type") != "aggregate"][-1]
        yield name, runs, chosen


def split_attached(counter):
    """'x_baseline' -> ('x', 'baseline'); 'x_ratio' -> ('x', 'ratio'); else (counter, None)."""
    for extra in ATTACHED:
        if counter.endswith("_" + extra) and len(counter) > len(extra) + 1:
            return counter[: -len(extra) - 1], extra
    return counter, None


def entries_for(name, run):
    counters = {k: v for k, v in run.items() if k not in STANDARD_FIELDS and is_number(v)}
    if not counters:
        if is_number(run.get("real_time")):
            return [{"name": f"{name}/real_time", "value": run["real_time"],
                     "unit": run.get("time_unit", "ns")}]
        return []

    entries = {}
    for key, value in counters.items():
        base, extra = split_attached(key)
        if extra and base in counters:
            continue  # attached to base below
        # A lone <x>_baseline keeps <x>'s unit; a lone <x>_ratio has none.
        unit = "" if extra == "ratio" else unit_for(base)
        entries[key] = {"name": f"{name}/{key}", "value": value, "unit": unit}
    for key, value in counters.items():
        base, extra = split_attached(key)
        if extra and base in entries:
            entries[base][extra] = value
    return list(entries.values())


def merge(paths):
    results, problems = [], []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        for name, runs, chosen in pick_runs(data.get("benchmarks", [])):
            bad = [r for r in runs if failed(r)]
            if bad:
                msg = bad[0].get("error_message") or bad[0].get("skip_message") or "error"
                problems.append(f"{path}: {name}: {msg}")
                continue
            results.extend(entries_for(name, chosen))
    return results, problems


def fmt(value):
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def print_table(results, out=sys.stdout):
    header = ("benchmark", "value", "unit", "baseline", "ratio")
    rows = [(r["name"], fmt(r["value"]), r["unit"], fmt(r.get("baseline")), fmt(r.get("ratio")))
            for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for n, row in enumerate([header, *rows]):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        print("  ".join(cells).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="merged JSON list to write")
    parser.add_argument("inputs", nargs="+", help="Google Benchmark JSON files (--benchmark_out)")
    args = parser.parse_args(argv)

    results, problems = merge(args.inputs)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print_table(results)
    print(f"merge_bench.py: {len(results)} results from {len(args.inputs)} file(s) -> {args.output}")
    for problem in problems:
        print(f"merge_bench.py: ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

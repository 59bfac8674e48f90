#!/usr/bin/env python3
"""Op table of a LibTorch trace (mops_step_bench --profile FILE.json): total milliseconds per op
name over the traced steps, share of the summed top-level time, calls. Nested ops (an op called
inside another, e.g. aten::mm inside aten::linear) are counted only at the outermost level, so
the shares add up to the traced time.

    .venv/bin/python bench/profile_table.py TRACE.json [--steps N] [--top 25]
"""
import argparse
import collections
import json


def outermost(events):
    """Complete events of each thread that no other event of that thread encloses."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[e.get("tid")].append(e)
    top = []
    for items in by_thread.values():
        items.sort(key=lambda e: (e["ts"], -e["dur"]))
        end = -1.0
        for e in items:
            if e["ts"] >= end:
                top.append(e)
                end = e["ts"] + e["dur"]
    return top


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("--steps", type=int, default=1, help="steps in the trace: times are per step")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    with open(a.trace) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total = collections.Counter()
    calls = collections.Counter()
    for e in outermost(events):
        total[e["name"]] += e["dur"] / 1e3
        calls[e["name"]] += 1
    whole = sum(total.values())
    print(f"| op | ms/step | share | calls/step |\n|---|---|---|---|")
    for name, ms in total.most_common(a.top):
        print(f"| {name} | {ms / a.steps:.2f} | {100 * ms / whole:.1f} % | {calls[name] / a.steps:.0f} |")
    print(f"| all ops | {whole / a.steps:.2f} | 100 % | {sum(calls.values()) / a.steps:.0f} |")


if __name__ == "__main__":
    main()

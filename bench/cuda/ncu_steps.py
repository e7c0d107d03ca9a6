#!/usr/bin/env python3
"""Per-kernel times of the last decode step in an Nsight Compute CSV written by
run_device_profile.sh (metric gpu__time_duration.sum, one row per kernel launch).

A step ends with the output head's product, the launch whose grid is the largest among the
product kernels of a decode step; we cut the sequence after each launch of the kernel that
comes last in the file and report the last step: kernels grouped by name (count, total us,
mean us), and the step's kernel time beside its count (a graph replay adds ~1-1.6 us a launch).
Usage: ncu_steps.py FILE.csv [--step K] (K: 1 = last step, 2 = the one before, ...)
"""
import csv
import re
import sys
from collections import OrderedDict


def short(name):
    name = re.sub(r"\(.*$", "", name)  # drop the parameter list
    name = name.replace("void ", "").replace("strata::<unnamed>::", "").replace("strata::", "")
    return name


def main():
    path = sys.argv[1]
    k = int(sys.argv[sys.argv.index("--step") + 1]) if "--step" in sys.argv else 1
    rows = []
    with open(path) as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r["Metric Name"] != "gpu__time_duration.sum":
            continue
        rows.append((short(r["Kernel Name"]), r["Grid Size"], float(r["Metric Value"].replace(",", "")) / 1000.0))
    last = rows[-1][0]
    ends = [i for i, r in enumerate(rows) if r[0] == last and r[1] == rows[-1][1]]
    start = ends[-k - 1] + 1 if len(ends) > k else 0
    step = rows[start:ends[-k] + 1]
    groups = OrderedDict()
    for name, grid, us in step:
        g = groups.setdefault(name, [0, 0.0, set()])
        g[0] += 1
        g[1] += us
        g[2].add(grid)
    total = sum(us for _, _, us in step)
    print(f"{path}: step {k} from the end: {len(step)} kernels, {total:.1f} us of kernel time")
    for name, (n, us, grids) in sorted(groups.items(), key=lambda x: -x[1][1]):
        print(f"  {us:9.1f} us {100 * us / total:5.1f}%  x{n:<4d} {us / n:7.2f} us  {name[:90]}  grids {','.join(sorted(grids))[:40]}")


if __name__ == "__main__":
    main()

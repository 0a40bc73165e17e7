#!/usr/bin/python3
"""Process-tree CPU and memory snapshots for bench/run.sh (Linux /proc only).

    procstat.py cpu GROUP=PID[,PID...] ...   one JSON line: CPU ticks of each group's
                                             process trees, plus /proc/stat totals
    procstat.py mem PID [PID...]             one JSON line: process count, summed RSS
                                             and PSS (KiB) of the given process trees
    procstat.py hwm PID [PID...]             one JSON line: VmHWM and VmRSS (KiB) of each
                                             process of the trees, and the largest VmHWM

A group's ticks are utime+stime+cutime+cstime summed over its root PIDs and all
their descendants, so CGI children reaped by a runner are counted in the runner.
Two cpu snapshots taken around a load give each group's share of the machine.
"""
import json
import os
import sys
import time


def read_stat(pid):
    """Fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def parent_map():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = int(read_stat(name)[1])
            except (OSError, ValueError, IndexError):
                pass  # the process exited while we looked
    return parents


def trees(roots, parents):
    """Root PIDs that still exist plus all their descendants."""
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return sorted(seen)


def ticks(pid):
    try:
        f = read_stat(pid)
        return sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return 0


def pids_of(arg):
    return [int(p) for p in arg.split(",") if p.strip()]


def cmd_cpu(args):
    parents = parent_map()
    groups = {}
    for arg in args:
        name, _, pids = arg.partition("=")
        members = trees(pids_of(pids), parents)
        groups[name] = {"ticks": sum(ticks(p) for p in members), "procs": len(members)}
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    print(json.dumps({
        "t": time.monotonic(),
        "hz": os.sysconf("SC_CLK_TCK"),
        "ncpu": os.cpu_count(),
        "groups": groups,
        # user nice system idle iowait irq softirq steal (guest fields dropped)
        "proc_stat": cpu[:8],
    }))


def smaps_pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def status_kib(pid, field):
    """A KiB field of /proc/PID/status (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss(pid):
    return status_kib(pid, "VmRSS")


def cmd_mem(args):
    members = trees([int(a) for a in args], parent_map())
    print(json.dumps({
        "procs": len(members),
        "rss_kib": sum(rss(p) for p in members),
        "pss_kib": sum(smaps_pss(p) for p in members),
    }))


def cmd_hwm(args):
    members = trees([int(a) for a in args], parent_map())
    procs = {str(p): {"hwm_kib": status_kib(p, "VmHWM"), "rss_kib": rss(p)} for p in members}
    print(json.dumps({
        "procs": procs,
        "max_hwm_kib": max((v["hwm_kib"] for v in procs.values()), default=0),
    }))


def main():
    commands = {"cpu": cmd_cpu, "mem": cmd_mem, "hwm": cmd_hwm}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()

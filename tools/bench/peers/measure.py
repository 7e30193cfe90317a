#!/usr/bin/env python3
"""Runs a command and writes what it cost the machine as a whole process tree:

  measure.py OUT.json -- COMMAND [ARGS...]

OUT.json: exit code, wall seconds, CPU seconds of the whole tree (getrusage of the reaped
children: every thread and worker process, start-up included), and peak memory: the largest sum
over the live process tree of PSS (proportional set size: a page shared by N processes counts
1/N in each, so forked DataLoader workers are not counted N times over their parent's pages)
and of RSS, sampled every 0.25 s from /proc. Sampling can miss a peak shorter than that; the
caches measured here grow and stay. The command's stdout and stderr pass through, and its exit
code is returned.
"""
import json
import resource
import subprocess
import sys
import time

from harness import descendants  # standard library only, like this script


def memory(pid):
    """(PSS, RSS) in bytes of one process; zeros if it has gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    out, cmd = sys.argv[1], sys.argv[3:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss = rss = 0
        for pid in [proc.pid] + descendants(proc.pid):
            p, r = memory(pid)
            pss += p
            rss += r
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump({"command": cmd, "exit_code": proc.returncode, "wall_seconds": round(wall, 3),
                   "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
                   "peak_pss_bytes": peak_pss, "peak_rss_bytes": peak_rss}, f)
        f.write("\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""make bench: vblkd through the simulated Xen path beside raw fio, and over vhost-user beside qemu-storage-daemon.

Each point runs three times on the same backing file(s), same block size, queue depth and runtime:
  1. vblkd-sim (its default engine, auto: libaio with O_DIRECT, io_uring through the page cache)
     with the xensim guests' own virtio-blk driver (the `bench` workload:
     stamps the region, then a timed phase; every read and the file afterwards are checked);
  2. vblkd-sim --engine=null: the same guest path with no IO, i.e. the simulator's notification
     cost plus vblkd's own request handling;
  3. fio, libaio, O_DIRECT (the physical limit on this machine).
Then callgrind counts vblkd's user-space instructions per request.  The multi-disk rows run vblkd
again with each of --compare-io-threads (default 1 and 2 IO threads) and print each of its threads'
CPU utilisation over the busiest stretch of the run (from /proc/<pid>/task/*/stat).  Then each
vhost-user point (4k random QD1 and QD32, 1M sequential QD8; page cache and O_DIRECT) runs
tests/vhost/vu-load against vblkd --vhost-user and qemu-storage-daemon on the same file,
alternating (--only vhost: these alone).  Figures are ratios within this
run: machines are noisy.  Exit status 1 if any workload failed its data checks or did not run.
Standard library only.
"""
import argparse
import array
import bisect
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("BUILD", "build/default")
FAILURES = []
VBLKD_ARGS = []     # --vblkd-arg: more arguments for vblkd-sim's measured runs and the vhost-user vblkd
XENSIM_ARGS = []    # --fast-path: the simulator's privcmd with ioeventfd and irqfd
FAST_PATH = "xensim:--privcmd-eventfd"  # the same for one row
# --io-threads for every vblkd run (None: vblkd's default); set by main().
IO_THREADS = None
TICK = os.sysconf("SC_CLK_TCK")


def thread_ticks(pid):
    """{thread name: utime + stime in clock ticks} of @pid's threads (same names summed)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        # Fields 14 and 15 of proc(5), counted from the state (field 3) here.
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


class ThreadSampler:
    """Samples a process's threads' CPU time every @period s; utilisation() over the busiest @window s."""

    def __init__(self, pid, period=0.1):
        self.pid, self.period, self.samples = pid, period, []
        self.hwm_kib = 0    # the process's peak RSS (VmHWM) as last seen
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), thread_ticks(self.pid)))
            self.hwm_kib = max(self.hwm_kib, vm_hwm_kib(self.pid) or 0)
            self.stop.wait(self.period)

    def finish(self):
        self.samples.append((time.monotonic(), thread_ticks(self.pid)))
        self.stop.set()
        self.t.join()

    def cpu_between(self, t0, t1):
        """CPU seconds the daemon used from @t0 to @t1 (monotonic seconds), each end interpolated
        between the samples around it; None unless both lie within the samples."""
        tot = [(ts, sum(c.values()) / TICK) for ts, c in self.samples]

        def at(t):
            for (ta, a), (tb, b) in zip(tot, tot[1:]):
                if ta <= t <= tb:
                    return a + (b - a) * (t - ta) / (tb - ta) if tb > ta else b
            return None

        lo, hi = at(t0), at(t1)
        return hi - lo if lo is not None and hi is not None else None

    def utilisation(self, window):
        """{thread: share of one CPU} over the window of about @window s where the daemon used most CPU."""
        best, best_total = {}, -1.0
        s = self.samples
        j = 0
        for i in range(len(s)):
            while j < len(s) and s[j][0] - s[i][0] < window:
                j += 1
            if j >= len(s):
                break
            (t0, a), (t1, b) = s[i], s[j]
            shares = {n: (b[n] - a.get(n, 0)) / TICK / (t1 - t0) for n in b}
            total = sum(shares.values())
            if total > best_total:
                best, best_total = shares, total
        return best


class StallProbe:
    """tests/bench/stall-probe beside a run: when the machine itself stopped running programs (a VM
    whose host stopped its vCPUs; the probe's comment says how it tells).  None where not built."""

    def __init__(self):
        path = os.path.join(BUILD, "stall-probe")
        self.p = (subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                  if os.access(path, os.X_OK) else None)
        self.t0 = time.monotonic()

    def close(self):
        """End the probe without a reading (the run failed); nothing once finish() has run."""
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def finish(self, t0=None, t1=None):
        """{"share": of @t0..@t1 (monotonic s; default the probe's whole run) the machine was stopped,
        "max_ms": the longest stop in it, "stops": [(begin, end) s] for p99_outside_stops(), None
        where they cannot be trusted (the probe not real-time: then scheduling delays look like
        stops too) or are not all listed}, or None."""
        if not self.p:
            return None
        t_end = time.monotonic()
        try:
            out, _ = self.p.communicate("", timeout=10)
            r = json.loads(out)
        except (subprocess.TimeoutExpired, ValueError):
            self.close()
            return None
        t0, t1 = t0 or self.t0, t1 or t_end
        if t1 <= t0:
            return None
        if len(r["list"]) < r["stalls"]:
            # Not all listed: the probe's own total, over its whole run.
            return {"share": r["stalled_ms"] / 1e3 / max(r["seconds"], 1e-3),
                    "max_ms": r["max_ms"], "realtime": r["realtime"], "stops": None}
        lost, stops = [], []
        for end_us, late_us in r["list"]:
            stops.append(((end_us - late_us) / 1e6, end_us / 1e6))
            # The part of each stop that lies within t0..t1.
            a, b = max(end_us - late_us, t0 * 1e6), min(end_us, t1 * 1e6)
            if b > a:
                lost.append(b - a)
        return {"share": sum(lost) / 1e6 / (t1 - t0), "max_ms": max(lost, default=0) / 1e3,
                "realtime": r["realtime"], "stops": stops if r["realtime"] else None}


def tail_outside(stall, reqs, slack=0.0):
    """p99_outside_stops() of @reqs for a StallProbe reading, which then loses its stop list (not
    kept in the JSON); None where either is missing."""
    stops = stall.pop("stops", None) if stall else None
    return p99_outside_stops(reqs, stops, slack) if stops is not None and reqs else None


def xensim_requests(path, ops):
    """xensim's request log ($XENSIM_LATLOG: done ns, latency ns, little-endian uint64 each) as
    (done, latency) in monotonic seconds; None without one, or unless it holds all @ops requests
    the report counts (xensim caps it)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    raw = array.array("Q", data[:len(data) - len(data) % 16])
    if sys.byteorder != "little":
        raw.byteswap()
    if len(raw) != 2 * ops:
        log(f"bench: {path}: {len(raw) // 2} requests logged, {ops} counted; no tail outside stops")
        return None
    return [(raw[i] / 1e9, raw[i + 1] / 1e9) for i in range(0, len(raw), 2)]


def fio_requests(prefix):
    """fio's per-request total latency logs (--write_lat_log=PREFIX --log_avg_msec=0
    --log_alternate_epoch=1 --log_alternate_epoch_clock_id=1: 'CLOCK_MONOTONIC ms, ns, ...' per
    line, one file per job) as (done, latency) in monotonic seconds, done rounded down to the ms."""
    out = []
    d, base = os.path.split(prefix)
    for name in os.listdir(d):
        if not (name.startswith(base + "_lat.") and name.endswith(".log")):
            continue
        with open(os.path.join(d, name)) as f:
            for line in f:
                fields = line.split(",")
                if len(fields) >= 2:
                    out.append((int(fields[0]) / 1e3, int(fields[1]) / 1e9))
    return out


def p99_outside_stops(reqs, stops, slack=0.0):
    """Of @reqs ((done, latency) seconds): the p99 (us) of all, that of those no stop of the
    machine (@stops: (begin, end) seconds) overlapped, and the share left out; @slack widens each
    request both ways (fio's done times are whole milliseconds)."""
    if not reqs:
        return None
    stops = sorted(stops)
    starts = [a for a, _ in stops]
    every, kept = [], []
    for done, lat in reqs:
        every.append(lat)
        # Stops do not overlap, so of those begun before it was done the last ends last: did it
        # end after the request was sent?
        j = bisect.bisect_left(starts, done + slack)
        if not (j and stops[j - 1][1] > done - lat - slack):
            kept.append(lat)
    p99 = lambda xs: sorted(xs)[int(0.99 * (len(xs) - 1))] * 1e6 if xs else None
    return {"p99_us": p99(every), "p99_outside_us": p99(kept),
            "left_out": 1 - len(kept) / len(every)}


def vm_hwm_kib(pid):
    """@pid's peak resident set (VmHWM, KiB), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def timed_phase(rows):
    """The guests' timed phase (xensim's start_us..end_us of every disk), monotonic seconds, or None."""
    try:
        return (min(int(r["start_us"]) for r in rows) / 1e6, max(int(r["end_us"]) for r in rows) / 1e6)
    except (KeyError, ValueError):
        return None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return os.cpu_count(), model


def hold_pm_qos():
    """Keep idle CPUs out of deep idle states for the whole run, fio and vblkd alike.

    Writing 0 to /dev/cpu_dma_latency and keeping it open (the PM QoS interface that tuned's
    latency-performance profile uses) makes an idle CPU poll instead of halting.  In a virtual
    machine a halted vCPU takes tens of microseconds to wake, and the simulated Xen path wakes
    threads on the other CPU several times per request where fio wakes one: without this the
    figures measure the hypervisor's halt exits more than either program.  Returns the open fd,
    or None (not root, or no such device) with the reason logged.
    """
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(fd, (0).to_bytes(4, sys.byteorder))
        return fd
    except OSError as e:
        log(f"bench: cannot hold /dev/cpu_dma_latency at 0 ({e.strerror}): idle CPUs may halt")
        return None


def cpuidle_driver():
    """The kernel's cpuidle driver, or None: without one PM QoS requests change nothing."""
    try:
        with open("/sys/devices/system/cpu/cpuidle/current_driver") as f:
            d = f.read().strip()
    except OSError:
        return None
    return None if d in ("", "none") else d


def spin(cpu, parent):
    """A child's busy loop on @cpu at SCHED_IDLE: it runs only when nothing else wants the CPU.

    It ends by itself once bench.py is gone (killed before it could stop its spinners)."""
    try:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        os._exit(1)
    while os.getppid() == parent:
        for _ in range(100000):
            pass
    os._exit(0)


def start_spinners():
    """Keep idle CPUs from halting where PM QoS cannot: one SCHED_IDLE busy loop per CPU.

    Without a cpuidle driver (current_driver "none", common in VMs) an idle CPU halts whatever
    /dev/cpu_dma_latency says, and a halted vCPU takes tens of microseconds to wake.  A busy loop
    at SCHED_IDLE keeps each CPU running; the scheduler preempts it as soon as fio, vblkd or a
    simulated guest becomes runnable there.  Returns the children's pids.
    """
    pids = []
    parent = os.getpid()
    for cpu in sorted(os.sched_getaffinity(0)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            spin(cpu, parent)
        pids.append(pid)
    return pids


def choose_spinners(tmp, disk, why):
    """Spinners or not, by what they do here: the null engine's 4k randread QD1 through the
    simulated path (wake-ups and traps, no IO: what a halted CPU slows), 1.5 s with and without
    them, twice each, alternating.  On some virtual machines a busy vCPU costs the other one more
    than a halted one does (the host runs both), and the spinners slow every row; they are kept
    only if they make that path at least 10% faster.  Returns the header's description."""
    wl = f"bench,rw=randread,bs=4096,qd=1,time=1500,span={16 << 20},check=0"
    guests = [f"name=c,vcpus=1,mem=64M,disk={disk}:rw:dio"]
    best = {True: 0.0, False: 0.0}
    # A first run warms up (it was 2.5x slower than the next ones here), not counted.
    run_vblkd(tmp, "null", guests, wl, tag="calibration", retry=False)
    for on in (False, True, False, True):
        log(f"bench: calibration, null engine 4k randread QD1, {'with' if on else 'without'} spinners")
        pids = start_spinners() if on else []
        try:
            v = run_vblkd(tmp, "null", guests, wl, tag="calibration", retry=False)
        finally:
            stop_spinners(pids)
        if v["rows"]:
            best[on] = max(best[on], aggregate(v["rows"])["iops"])
    figures = (f"null engine 4k QD1 {fmt(best[True])} IOPS with SCHED_IDLE spinners, "
               f"{fmt(best[False])} without")
    if best[True] >= 1.1 * best[False]:
        return f"SCHED_IDLE spinners, {why} ({figures})"
    return f"may halt, {why}: spinners do not help here ({figures}; --spin forces them)"


def stop_spinners(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        os.waitpid(pid, 0)


def make_file(path, size):
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)


def parse_reqs(report):
    """Requests the guests sent over the whole run (prefill included), from xensim's report."""
    total = 0
    for m in re.finditer(r"(\d+) reads \([^)]*\), (\d+) writes \([^)]*\), (\d+) flushes", report):
        total += sum(int(x) for x in m.groups())
    return total


def parse_bench(report):
    rows = []
    for line in report.splitlines():
        if line.startswith("bench "):
            rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    return rows


def run_vblkd(tmp, engine, guests, workload, wrapper=None, tag="", retry=True, extra=(),
              io_threads=None, window=None, tail=False):
    """Run xensim with @guests and @workload against a fresh vblkd-sim; returns a result dict.

    @io_threads: its --io-threads (None: IO_THREADS); @window: seconds over which to report each
    thread's utilisation (the busiest such stretch), None for none; @tail: the guests log every
    request for the p99 outside the machine's stops (the main table's runs only)."""
    if io_threads is None:
        io_threads = IO_THREADS
    # "xensim:ARG" in @extra is the simulator's (e.g. the fast path), the rest vblkd's.
    all_extra = list(extra)
    sim_extra = [x[len("xensim:"):] for x in extra if x.startswith("xensim:")]
    extra = [x for x in extra if not x.startswith("xensim:")]
    sock = os.path.join(tmp, "sim.sock")
    ctl = os.path.join(tmp, "ctl.sock")
    for p in (sock, ctl):
        if os.path.exists(p):
            os.unlink(p)
    latlog = os.path.join(tmp, "latlog.bin")
    if os.path.exists(latlog):
        os.unlink(latlog)
    env = dict(os.environ, XENSIM_SOCKET=sock)
    if tail:
        env["XENSIM_LATLOG"] = latlog
    rfd, wfd = os.pipe()
    args = [os.path.join(BUILD, "xensim"), "--socket", sock, "--ready-fd", str(wfd),
            "--timeout", "60000", "--log-level", "err"] + XENSIM_ARGS
    args += [x for x in sim_extra if x not in XENSIM_ARGS]
    for g in guests:
        args += ["--guest", g]
    args += ["--workload", workload]
    xs = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          pass_fds=(wfd,), text=True)
    os.close(wfd)
    ready, _, _ = select.select([rfd], [], [], 10)
    os.close(rfd)
    if not ready:
        xs.kill()
        xs.wait()
        raise RuntimeError("xensim did not start")
    cmd = [os.path.join(BUILD, "vblkd-sim"), "--foreground", "--engine=" + engine,
           "--control-socket=" + ctl, "--log-level=err"] + VBLKD_ARGS + list(extra)
    if io_threads is not None:
        cmd.append(f"--io-threads={io_threads}")
    if wrapper:
        cmd = wrapper + cmd
    probe = StallProbe()
    # A probe left running (SCHED_FIFO) would outlast a run that raised.
    try:
        vb = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        # Every run but perf's: the daemon's CPU over the timed phase (and each thread's busiest window).
        sampler = ThreadSampler(vb.pid, period=0.05) if not wrapper else None
        out, _ = xs.communicate()
        if sampler:
            sampler.finish()
        # The daemon stops by itself once the simulator is gone; make sure of it.
        # os.kill, not Popen.send_signal: that may reap the child, and wait4 needs it for the rusage.
        target = vb.pid
        if wrapper and wrapper[0] == "perf":
            # perf stat runs the daemon as its child: stop that one, perf then writes its counts.
            kids = subprocess.run(["pgrep", "-P", str(vb.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                target = int(kids[0])
        # Its peak RSS from /proc (sampled: it may have gone already), not wait4's ru_maxrss:
        # exec keeps the forking process's (this script's) peak there, which is what that column
        # showed until session 14.
        rss_kib = max(sampler.hwm_kib if sampler else 0, vm_hwm_kib(target) or 0) or None
        os.kill(target, signal.SIGTERM)
        _, status, ru = os.wait4(vb.pid, 0)
        vb.returncode = os.waitstatus_to_exitcode(status)
        err = vb.stderr.read()
        vb.stderr.close()
    except BaseException:
        probe.close()
        raise
    rows = parse_bench(out)
    phase = timed_phase(rows)
    stall = probe.finish(*phase) if phase else probe.finish()
    ops = sum(int(r["ops"]) for r in rows) if rows else 0
    outside = tail_outside(stall, xensim_requests(latlog, ops)
                           if tail and stall and stall["stops"] else None)
    if xs.returncode < 0 and retry:
        # Killed by a signal from outside (not a failed check): measure once more.
        log(f"bench: {tag} engine={engine}: xensim killed by signal {-xs.returncode}, retrying")
        return run_vblkd(tmp, engine, guests, workload, wrapper, tag, retry=False, extra=all_extra,
                         io_threads=io_threads, window=window, tail=tail)
    ok = xs.returncode == 0 and rows
    if not ok:
        FAILURES.append(f"{tag} engine={engine}: xensim exit {xs.returncode}")
        log(f"bench: {tag} engine={engine} FAILED:\n{out}\n{err[-2000:]}")
    return {
        "ok": bool(ok),
        "rows": rows,
        "report": out,
        "reqs": parse_reqs(out),
        "cpu": ru.ru_utime + ru.ru_stime,
        "rss_kib": rss_kib,
        "threads": sampler.utilisation(window) if sampler and window else None,
        "timed_cpu_per_req": timed_cpu_per_req(sampler, rows) if sampler else None,
        "stall": stall,
        "outside_stops": outside,
    }


def us_or_none(seconds):
    return seconds * 1e6 if seconds is not None else None


def timed_cpu_per_req(sampler, rows):
    """The daemon's CPU seconds per guest request over the timed phase (xensim's start_us..end_us of
    every disk; the untimed stamping and the checks after it left out)."""
    phase = timed_phase(rows)
    try:
        ops = sum(int(r["ops"]) for r in rows)
    except (KeyError, ValueError):
        return None
    if not phase:
        return None
    cpu = sampler.cpu_between(*phase)
    return cpu / ops if cpu is not None and ops else None


def aggregate(rows):
    """Sum IOPS and MB/s over disks; latency: the request-weighted mean of the disks' percentiles."""
    if not rows:
        return None
    ops = sum(int(r["ops"]) for r in rows)
    agg = {"iops": sum(float(r["iops"]) for r in rows), "mbps": sum(float(r["mbps"]) for r in rows)}
    for k in ("lat_p50_us", "lat_p99_us", "lat_mean_us"):
        agg[k] = sum(float(r[k]) * int(r["ops"]) for r in rows) / max(ops, 1)
    # The interrupt path (raise to seen done), over the requests that waited for an interrupt.
    slept = sum(float(r.get("irq_share", 0)) * int(r["ops"]) for r in rows)
    agg["irq_p50_us"] = (sum(float(r.get("irq_p50_us", 0)) * float(r.get("irq_share", 0)) * int(r["ops"])
                             for r in rows) / slept) if slept else None
    # The guest's MMIO traps: per request, mean wait, and the share of its vCPUs' time spent waiting.
    traps = sum(float(r.get("traps_per_op", 0)) * int(r["ops"]) for r in rows)
    agg["traps_per_op"] = traps / max(ops, 1)
    agg["trap_mean_us"] = (sum(float(r.get("trap_mean_us", 0)) * float(r.get("traps_per_op", 0)) * int(r["ops"])
                               for r in rows) / traps) if traps else None
    vcpus = sum(int(r.get("vcpus", 1)) for r in rows)
    agg["trap_share"] = sum(float(r.get("trap_share", 0)) * int(r.get("vcpus", 1)) for r in rows) / max(vcpus, 1)
    return agg


def run_fio(tmp, rw, bs, qd, files, size, runtime, cached=False, tail=False):
    """fio on @files; with @tail, a run of its own that logs every request's latency (which costs
    fio a few percent: not the run the table compares) for its p99 outside the machine's stops."""
    # Page cache: fio's io_uring at the same depth, the file kept cached (--invalidate=0).
    io = ["--ioengine=io_uring", "--direct=0", "--invalidate=0"] if cached else \
         ["--ioengine=libaio", "--direct=1"]
    args = ["fio", "--output-format=json"] + io + ["--time_based",
            f"--runtime={runtime}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}",
            f"--size={size}", "--norandommap", "--randrepeat=0", "--lat_percentiles=1",
            "--group_reporting", "--thread"]
    for i, f in enumerate(files):
        args += [f"--name=j{i}", f"--filename={f}"]
    latlog = os.path.join(tmp, "fio-tail")
    if tail:
        for name in os.listdir(tmp):
            if name.startswith("fio-tail_"):
                os.unlink(os.path.join(tmp, name))
        args += [f"--write_lat_log={latlog}", "--log_avg_msec=0", "--log_alternate_epoch=1",
                 "--log_alternate_epoch_clock_id=1"]
    # fio's whole process, as for vblkd: its --thread jobs' own figures (RUSAGE_THREAD) leave out
    # the kernel's io_uring workers (iou-wrk threads of the process) that do its buffered writes.
    probe = StallProbe()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(args, capture_output=True, text=True, cwd=tmp)
    except BaseException:
        probe.close()
        raise
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stall = probe.finish()
    if p.returncode != 0:
        FAILURES.append(f"fio {rw} bs={bs} qd={qd}: exit {p.returncode}")
        log(f"bench: fio failed: {p.stderr[-2000:]}")
        return None
    if tail:
        # fio's done times are whole milliseconds: each request widened by one.
        return tail_outside(stall, fio_requests(latlog) if stall and stall["stops"] else None,
                            slack=1e-3)
    if stall:
        stall.pop("stops", None)
    j = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    d = j["read"] if rw in ("read", "randread") else j["write"]
    pct = d["lat_ns"].get("percentile", {})
    reqs = sum(j[k]["total_ios"] for k in ("read", "write"))
    own = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return {"iops": d["iops"], "mbps": d["bw_bytes"] / 1e6,
            "cpu_per_mreq": cpu / reqs * 1e6 if reqs else None,
            "job_cpu_per_mreq": own / reqs * 1e6 if reqs else None,
            "lat_p50_us": pct.get("50.000000", 0) / 1e3, "lat_p99_us": pct.get("99.000000", 0) / 1e3,
            "lat_mean_us": d["lat_ns"]["mean"] / 1e3, "stall": stall}


def callgrind_ir(path):
    """Total instructions, and those spent inside the simulated libxen* (libxensim's API functions)."""
    total = sim = 0
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    p = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", "--threshold=100", path],
                       capture_output=True, text=True)
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) .*/libxensim/[^:]+:((xen|xs_|xc_)\w*) ", line)
        if m:
            sim += int(m.group(1).replace(",", ""))
    return total, sim


def instructions_per_request(tmp, disk, qd, t_short, t_long):
    """Marginal user-space instructions per request: two callgrind runs of different length."""
    res = []
    for t in (t_short, t_long):
        out = os.path.join(tmp, f"callgrind.{qd}.{t}")
        wl = f"bench,rw=randread,bs=4096,qd={qd},time={t},span=4M"
        r = run_vblkd(tmp, "aio", [f"name=cg,vcpus=1,mem=64M,disk={disk}:rw:dio"], wl,
                      wrapper=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out],
                      tag=f"callgrind qd{qd}")
        if not r["ok"]:
            return None
        res.append((callgrind_ir(out), r["reqs"]))
    ((ir1, sim1), n1), ((ir2, sim2), n2) = res
    if n2 <= n1:
        return None
    return {"all": (ir2 - ir1) / (n2 - n1), "sim": (sim2 - sim1) / (n2 - n1),
            "vblkd": ((ir2 - sim2) - (ir1 - sim1)) / (n2 - n1)}


PERF_OK = None


def perf_works():
    """Whether perf can count system calls here (linux-perf, and tracepoints allowed)."""
    global PERF_OK
    if PERF_OK is None:
        try:
            p = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "--", "true"],
                               capture_output=True, text=True, timeout=30)
            PERF_OK = p.returncode == 0 and "raw_syscalls" in p.stderr and "<not" not in p.stderr
        except (OSError, subprocess.TimeoutExpired):
            PERF_OK = False
    return PERF_OK


def syscalls_per_request(tmp, engine, guests, workload, tag, extra=()):
    """The daemon's system calls (all its threads) per guest request, over a whole run."""
    if not perf_works():
        return None
    out = os.path.join(tmp, "perf.txt")
    r = run_vblkd(tmp, engine, guests, workload, tag=tag + " syscalls", extra=extra,
                  wrapper=["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-o", out, "--"])
    try:
        with open(out) as f:
            for line in f:
                fields = line.split(",")
                if len(fields) > 2 and fields[2].startswith("raw_syscalls:sys_enter") and fields[0].isdigit():
                    return int(fields[0]) / r["reqs"] if r["ok"] and r["reqs"] else None
    except OSError:
        pass
    return None


def median_by_iops(runs, key):
    """The run with the median IOPS (the lower middle one for an even count), or None."""
    if not runs:
        return None
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


# ---- vhost-user: vblkd beside qemu-storage-daemon, driven by tests/vhost/vu-load ----

VHOST_POINTS = [("4k randread QD1", "randread", 4096, 1), ("4k randwrite QD1", "randwrite", 4096, 1),
                ("4k randread QD32", "randread", 4096, 32), ("4k randwrite QD32", "randwrite", 4096, 32),
                ("1M read QD8", "read", 1 << 20, 8), ("1M write QD8", "write", 1 << 20, 8)]


def wait_socket(proc, sock, what):
    for _ in range(200):
        if os.path.exists(sock):
            return True
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    log(f"bench: {what} did not listen on {sock}: {proc.stderr.read()[-2000:] if proc.poll() is not None else 'timeout'}")
    return False


def vhost_engine(a, direct):
    """vblkd's engine for a vhost-user point: --vhost-engine, or auto: io_uring through the page cache
    (a cached read or write completes inside io_uring_enter, no worker thread), libaio with O_DIRECT."""
    if a.vhost_engine != "auto":
        return a.vhost_engine
    return "aio" if direct else "uring"


def start_backend(which, tmp, path, direct, engine):
    """vblkd or qemu-storage-daemon serving @path on a fresh socket; returns (Popen, socket)."""
    sock = os.path.join(tmp, which + ".sock")
    if os.path.exists(sock):
        os.unlink(sock)
    if which == "vblkd":
        cmd = [os.path.join(BUILD, "vblkd"), "--foreground", "--state-dir=", "--log-level=err",
               "--engine=" + engine,
               "--control-socket=" + os.path.join(tmp, "ctl.sock"),
               f"--vhost-user={sock},path={path}" + (",direct" if direct else "")] + VBLKD_ARGS
    else:
        # The same file, O_DIRECT with Linux AIO (vblkd's default engine) or the page cache with threads.
        cmd = ["qemu-storage-daemon", "--blockdev",
               f"driver=file,node-name=disk,filename={path},cache.direct={'on' if direct else 'off'},"
               f"aio={'native' if direct else 'threads'}",
               "--export", f"type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path={sock},"
               "writable=on"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not wait_socket(p, sock, which):
        p.kill()
        p.wait()
        return None, sock
    return p, sock


def run_vu_load(which, tmp, path, direct, engine, point, runtime, tag):
    """One run of vu-load against a fresh back end; its JSON figures, or None (recorded as a failure)."""
    _, rw, bs, qd = point
    p, sock = start_backend(which, tmp, path, direct, engine)
    if not p:
        FAILURES.append(f"vhost {tag} {which}: did not start")
        return None
    args = [os.path.join(BUILD, "vu-load"), "--socket=" + sock, f"--rw={rw}", f"--bs={bs}", f"--qd={qd}",
            f"--time={runtime}", f"--cpu-pid={p.pid}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=runtime + 300)
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if r.returncode != 0 or not r.stdout.strip():
        FAILURES.append(f"vhost {tag} {which}: vu-load exit {r.returncode}")
        log(f"bench: vhost {tag} {which} FAILED: {r.stderr[-2000:]}")
        return None
    return json.loads(r.stdout.splitlines()[0])


def picked(only, name):
    """--only: a part of the workload's name, or '=' and the whole name."""
    return name == only[1:] if only.startswith("=") else only in name


def run_vhost(a, tmp, only):
    """Each point, vblkd and qemu-storage-daemon alternately on one file; medians and pairwise ratios."""
    path = os.path.join(tmp, "vhost.img")
    make_file(path, int(a.vhost_span.rstrip("Mm")) << 20)
    results = []
    for direct in (False, True):
        for point in VHOST_POINTS:
            name = f"vhost {point[0]} {'O_DIRECT' if direct else 'page cache'}"
            if only and not picked(only, name):
                continue
            log(f"bench: {name}")
            runs = {"vblkd": [], "qsd": []}
            for _ in range(max(a.repeat, 1)):
                for which in ("vblkd", "qsd"):
                    x = run_vu_load(which, tmp, path, direct, vhost_engine(a, direct), point, a.time, name)
                    if x:
                        runs[which].append(x)
            pairs = list(zip(runs["vblkd"], runs["qsd"]))
            results.append({"name": name, "runs": runs, "engine": vhost_engine(a, direct),
                            "vblkd": median_by_iops(runs["vblkd"], lambda x: x["iops"]),
                            "qsd": median_by_iops(runs["qsd"], lambda x: x["iops"]),
                            "iops_ratios": sorted(v["iops"] / q["iops"] for v, q in pairs if q["iops"]),
                            "cpu_ratios": sorted(v["cpu_us_per_req"] / q["cpu_us_per_req"]
                                                 for v, q in pairs if q["cpu_us_per_req"])})
    return results


def print_vhost(results):
    print("| vhost-user workload | vblkd IOPS | qsd IOPS | IOPS ratio (median, range) | vblkd CPU us/req "
          "| qsd CPU us/req | CPU ratio (median, range) | vblkd p50 / p99 us | qsd p50 / p99 us | targets |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        v, q, ir, cr = r["vblkd"], r["qsd"], r["iops_ratios"], r["cpu_ratios"]
        med = lambda xs: xs[(len(xs) - 1) // 2] if xs else None
        miss = []
        if ir and med(ir) < 1.0:
            miss.append("IOPS")
        if cr and med(cr) > 0.8:
            miss.append("CPU")
        print(f"| {r['name']} ({r['engine']}) | {fmt(v and v['iops'])} | {fmt(q and q['iops'])} "
              f"| {fmt(med(ir), 2)} ({fmt(ir and ir[0], 2)}..{fmt(ir and ir[-1], 2)}) "
              f"| {fmt(v and v['cpu_us_per_req'], 1)} | {fmt(q and q['cpu_us_per_req'], 1)} "
              f"| {fmt(med(cr), 2)} ({fmt(cr and cr[0], 2)}..{fmt(cr and cr[-1], 2)}) "
              f"| {fmt(v and v['lat_p50_us'], 1)} / {fmt(v and v['lat_p99_us'], 1)} "
              f"| {fmt(q and q['lat_p50_us'], 1)} / {fmt(q and q['lat_p99_us'], 1)} "
              f"| {'missed: ' + ', '.join(miss) if miss else ('met' if ir and cr else '-')} |")
    print()
    print("vhost-user: tests/vhost/vu-load (a split-ring vhost-user-blk front end, EVENT_IDX, every byte checked) "
          "against vblkd --vhost-user (engine in brackets; ',direct' for O_DIRECT) and qemu-storage-daemon "
          "(--blockdev file, cache.direct=on with aio=native, or off with aio=threads) on the same file, "
          "alternating, a fresh back end per run.  CPU us/req: the back end's utime+stime (/proc/PID/stat, "
          "all threads) over the timed phase, per request.  Ratios are vblkd over qemu-storage-daemon, "
          "pairwise per round.  Targets: IOPS ratio >= 1.0, CPU ratio <= 0.8.")


def compare_io_threads(tmp, a, name, guests, wl, counts, extra=()):
    """@name's workload with each --io-threads of @counts, alternating; the median run of each."""
    runs = {n: [] for n in counts}
    for _ in range(max(a.repeat, 1)):
        for n in counts:
            log(f"bench: {name}, --io-threads={n}")
            v = run_vblkd(tmp, a.engine, guests, wl, tag=f"{name} io-threads={n}", io_threads=n,
                          window=a.time, extra=extra)
            if v["rows"]:
                v["agg"] = aggregate(v["rows"])
                runs[n].append(v)
    out = []
    for n in counts:
        v = median_by_iops(runs[n], lambda x: x["agg"]["iops"])
        out.append({"name": name, "io_threads": n, "runs": len(runs[n]),
                    "vblkd": v and v["agg"], "threads": v and v["threads"],
                    "iops_range": (min(x["agg"]["iops"] for x in runs[n]),
                                   max(x["agg"]["iops"] for x in runs[n])) if runs[n] else None,
                    "cpu_us": us_or_none(v and v["timed_cpu_per_req"]),
                    "stall": v and v["stall"]})
    return out


def print_io_threads(tcomp, window):
    if not tcomp:
        return
    print()
    print(f"IO threads side by side (runs alternate; median run by IOPS; thread CPU: share of one CPU "
          f"over the busiest {window:g} s of that run, /proc/<pid>/task/*/stat; vblkd-sim is the main "
          f"thread, vblkd-ioN the IO threads, others the engine's; IOPS per busy IO thread: vblkd's IOPS "
          f"over the IO threads' summed share (their io_uring workers included), what each would serve "
          f"on a CPU of its own, as on a host "
          f"whose guests run on other CPUs, up to the disk's own limit, fio's):")
    print()
    print("| workload | --io-threads | vblkd IOPS | IOPS range | vs first | vblkd MB/s | p50 / p99 us "
          "| CPU us / req | each thread's CPU | IOPS per busy IO thread | machine stopped, longest ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    first = {}
    for r in tcomp:
        v = r["vblkd"]
        base = first.setdefault(r["name"], v and v["iops"])
        th = r["threads"] or {}
        shown = ", ".join(f"{n} {100 * x:.0f}%" for n, x in sorted(th.items()) if x >= 0.01)
        # An IO thread's io_uring workers (iou-wrk-N) carry its page-cache writes: theirs too.
        busy = sum(x for n, x in th.items() if n.startswith(("vblkd-io", "iou-wrk")))
        rr = r["iops_range"]
        print(f"| {r['name']} | {r['io_threads']} | {fmt(v and v['iops'])} "
              f"| {fmt(rr and rr[0])}..{fmt(rr and rr[1])} "
              f"| {fmt(v and base and v['iops'] / base, 2)} | {fmt(v and v['mbps'], 1)} "
              f"| {fmt(v and v['lat_p50_us'], 1)} / {fmt(v and v['lat_p99_us'], 1)} "
              f"| {fmt(r['cpu_us'], 1)} | {shown or '-'} "
              f"| {fmt(v and busy and v['iops'] / busy)} | {stall_text(r['stall'])} |")


def stall_text(st):
    """'14.8% 15.9' from a StallProbe result; '-' without one."""
    if not st:
        return "-"
    return f"{100 * st['share']:.1f}% {st['max_ms']:.1f}" + ("" if st["realtime"] else " (not real-time)")


def outside_text(o):
    """'2,345.6 (1.4%)' from p99_outside_stops(); '-' without one."""
    if not o or o["p99_outside_us"] is None:
        return "-"
    return f"{fmt(o['p99_outside_us'], 1)} ({100 * o['left_out']:.1f}%)"


def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=float(os.environ.get("BENCH_TIME", 4)),
                    help="seconds per measured run (default 4, $BENCH_TIME)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR"),
                    help="where the backing files go (default: a temporary directory in /var/tmp)")
    ap.add_argument("--span", default="256M", help="size of the single-disk file in MiB, e.g. 256M (default)")
    ap.add_argument("--only", help="run only the workloads whose name contains this ('vhost': the "
                                   "vhost-user ones beside qemu-storage-daemon only; '=NAME': "
                                   "the workload named NAME alone)")
    ap.add_argument("--vhost-engine", default="auto",
                    help="vblkd's engine for the vhost-user points (default auto: uring through the page "
                         "cache, aio with O_DIRECT)")
    ap.add_argument("--vhost-span", default="64M", help="size of the vhost-user file in MiB (default 64M)")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--vblkd-arg", action="append", default=[],
                    help="one more argument for vblkd-sim in the measured runs and for vblkd in "
                         "the vhost-user ones (repeatable)")
    ap.add_argument("--fast-path", action="store_true",
                    help="the simulated kernel has privcmd's ioeventfd and irqfd (Linux 6.7 and later): "
                         "QueueNotify and interrupts bypass vblkd's ioreq path, as on current Xen")
    ap.add_argument("--engine", default="auto",
                    help="vblkd's engine for the measured runs (auto, its default; aio, uring)")
    ap.add_argument("--vblkd-only", action="store_true",
                    help="no fio, no null engine (to compare two builds: BUILD=...)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 3)),
                    help="vblkd and fio runs per point, alternating; the table shows the medians "
                         "and the range of the pairwise ratios (default 3, $BENCH_REPEAT)")
    ap.add_argument("--io-threads", type=int, default=None,
                    help="vblkd's --io-threads for every run (default: vblkd's own default)")
    ap.add_argument("--compare-io-threads", default="1,2",
                    help="the multi-disk rows again with each of these --io-threads, side by side "
                         "with each thread's CPU utilisation, and the page-cache rows with the "
                         "first of them (default 1,2; empty: not)")
    ap.add_argument("--no-pm-qos", action="store_true",
                    help="let idle CPUs halt (do not hold /dev/cpu_dma_latency at 0)")
    ap.add_argument("--no-spin", action="store_true",
                    help="no SCHED_IDLE spinners where /dev/cpu_dma_latency cannot keep idle CPUs "
                         "from halting (no cpuidle driver)")
    ap.add_argument("--spin", action="store_true",
                    help="SCHED_IDLE spinners where /dev/cpu_dma_latency cannot keep idle CPUs from "
                         "halting, without first measuring whether they help")
    a = ap.parse_args()
    VBLKD_ARGS.extend(a.vblkd_arg)
    if a.fast_path:
        XENSIM_ARGS.append(FAST_PATH[len("xensim:"):])
    global IO_THREADS
    IO_THREADS = a.io_threads
    compare = [int(x) for x in a.compare_io_threads.split(",") if x.strip()]

    # "vhost" in --only: the vhost-user points alone, no fio or callgrind needed.
    tools = () if a.only and "vhost" in a.only else ("fio",) + (() if a.no_callgrind else ("valgrind",))
    tools += ("qemu-storage-daemon",)
    for tool in tools:
        if not shutil.which(tool):
            log(f"bench: {tool} not found: run scripts/deps.sh bench (as root)")
            return 1
    t_ms = int(a.time * 1000)
    span = int(a.span.rstrip("Mm")) << 20
    qos = None if a.no_pm_qos else hold_pm_qos()
    spinners = []
    calibrate = False
    why = "no cpuidle driver" if qos is not None else "/dev/cpu_dma_latency not held"
    if qos is not None and cpuidle_driver():
        idle = "/dev/cpu_dma_latency held at 0"
    elif a.spin:
        idle = f"SCHED_IDLE spinners, {why} (--spin)"
    elif not a.no_spin:
        calibrate = True
    elif qos is not None:
        idle = "may halt (/dev/cpu_dma_latency held at 0, but no cpuidle driver; --no-spin)"
    else:
        idle = "may halt"
    tmp = tempfile.mkdtemp(prefix="vblkd-bench.", dir=a.dir or "/var/tmp")
    try:
        disk = os.path.join(tmp, "disk0.img")
        make_file(disk, span)
        multi = [os.path.join(tmp, f"g{g}d{d}.img") for g in range(4) for d in range(2)]
        mspan = 64 << 20
        for f in multi:
            make_file(f, mspan)

        # name, rw, bs, qd, guests (spec list), files for fio, fio size per file
        one = [f"name=b,vcpus=1,mem=128M,disk={disk}:rw:dio"]
        many = [f"name=m{g},vcpus=2,mem=128M,disk={multi[2 * g]}:rw:dio,disk={multi[2 * g + 1]}:rw:dio"
                for g in range(4)]
        # One guest with four disks: one guest's disks spread over the IO threads.
        wide = ["name=w,vcpus=4,mem=128M," + ",".join(f"disk={f}:rw:dio" for f in multi[:4])]
        # One guest with one disk of four queues (a queue per vCPU): one disk's queues spread.
        mq = [f"name=q,vcpus=4,mem=128M,disk={multi[0]}:rw:dio"]
        # Page cache: the disk line without direct-io-safe (xl's default), its file cached.
        cached = os.path.join(tmp, "cached.img")
        make_file(cached, span)
        pc = [f"name=p,vcpus=1,mem=128M,disk={cached}:rw"]
        points = [
            ("4k randread QD1", "randread", 4096, 1, one, [disk], span),
            ("4k randwrite QD1", "randwrite", 4096, 1, one, [disk], span),
            ("4k randread QD32", "randread", 4096, 32, one, [disk], span),
            ("4k randwrite QD32", "randwrite", 4096, 32, one, [disk], span),
            ("128k read QD8", "read", 131072, 8, one, [disk], span),
            ("128k write QD8", "write", 131072, 8, one, [disk], span),
            ("1M read QD8", "read", 1 << 20, 8, one, [disk], span),
            ("1M write QD8", "write", 1 << 20, 8, one, [disk], span),
            ("8 disks 4k randread QD8", "randread", 4096, 8, many, multi, mspan),
            ("8 disks 4k randwrite QD8", "randwrite", 4096, 8, many, multi, mspan),
            ("8 disks 128k read QD8", "read", 131072, 8, many, multi, mspan),
            # Issue 19's CPU target is at QD32, for one disk and for 8 disks.
            ("8 disks 4k randread QD32", "randread", 4096, 32, many, multi, mspan),
            ("8 disks 4k randwrite QD32", "randwrite", 4096, 32, many, multi, mspan),
            # Its disks on its own thread (the default), then spread over two (vblkd(8), --guest-threads).
            ("1 guest 4 disks 4k randread QD8", "randread", 4096, 8, wide, multi[:4], mspan),
            ("1 guest 4 disks 4k randread QD8, --guest-threads=2", "randread", 4096, 8, wide,
             multi[:4], mspan, ["--guest-threads=2"]),
            # Its queues on its disk's thread, then spread over two (vblkd(8), --guest-threads).
            ("1 guest 1 disk 4 queues 4k randread QD8", "randread", 4096, 8, mq, multi[:1], mspan,
             ["--queues=4"]),
            ("1 guest 1 disk 4 queues 4k randread QD8, --guest-threads=2", "randread", 4096, 8, mq,
             multi[:1], mspan, ["--queues=4", "--guest-threads=2"]),
            ("page cache 4k randread QD32", "randread", 4096, 32, pc, [cached], span),
            ("page cache 4k randwrite QD32", "randwrite", 4096, 32, pc, [cached], span),
            # Busy polling, off by default on hosts of fewer than 4 CPUs (vblkd(8), --poll-us).
            ("page cache 4k randread QD32, --poll-us=32", "randread", 4096, 32, pc, [cached], span,
             ["--poll-us=32"]),
            ("page cache 4k randwrite QD32, --poll-us=32", "randwrite", 4096, 32, pc, [cached],
             span, ["--poll-us=32"]),
            # Current Xen and Linux (6.7 and later, Debian 13): QueueNotify through privcmd's
            # ioeventfd and interrupts through its irqfd, not vblkd's ioreq path (vblkd(8)).
            ("8 disks 4k randread QD8, fast path", "randread", 4096, 8, many, multi, mspan,
             [FAST_PATH]),
            ("8 disks 4k randwrite QD8, fast path", "randwrite", 4096, 8, many, multi, mspan,
             [FAST_PATH]),
            ("page cache 4k randread QD32, fast path", "randread", 4096, 32, pc, [cached], span,
             [FAST_PATH]),
            ("page cache 4k randwrite QD32, fast path", "randwrite", 4096, 32, pc, [cached], span,
             [FAST_PATH]),
        ]
        if a.only:
            points = [p for p in points if picked(a.only, p[0])]
        # Started here, after the files are made: only the measured runs need them.
        # The files' writeback is done before anything is measured.
        os.sync()
        if calibrate:
            idle = choose_spinners(tmp, disk, why)
        if idle.startswith("SCHED_IDLE"):
            spinners = start_spinners()
        results, tcomp = [], []
        for point in points:
            name, rw, bs, qd, guests, files, size = point[:7]
            extra = point[7] if len(point) > 7 else []
            log(f"bench: {name}")
            wl = f"bench,rw={rw},bs={bs},qd={qd},time={t_ms},span={size}"
            # Alternate vblkd and fio so that both see the same stretch of a noisy machine.
            vs, fs = [], []
            for _ in range(max(a.repeat, 1)):
                v = run_vblkd(tmp, a.engine, guests, wl, tag=name, extra=extra, tail=True)
                if v["rows"]:
                    v["agg"] = aggregate(v["rows"])
                    v["cpu_per_mreq"] = v["cpu"] / v["reqs"] * 1e6 if v["reqs"] else None
                    vs.append(v)
                if not a.vblkd_only:
                    f = run_fio(tmp, rw, bs, qd, files, size, a.time, cached=guests is pc)
                    if f:
                        fs.append(f)
            n = fio_tail = None
            # Where issue 19 sets a p99 target (the 8-disk rows): fio's tail outside the stops.
            if not a.vblkd_only and guests is many:
                fio_tail = run_fio(tmp, rw, bs, qd, files, size, a.time, tail=True)
            if not a.vblkd_only:
                n = run_vblkd(tmp, "null", guests, wl + ",check=0", tag=name, extra=extra)
            v = median_by_iops(vs, lambda x: x["agg"]["iops"])
            f = median_by_iops(fs, lambda x: x["iops"])
            pair = [x["agg"]["iops"] / y["iops"] for x, y in zip(vs, fs) if y["iops"]]
            results.append({"name": name, "qd": qd, "vblkd": v and v["agg"],
                            "null": n and aggregate(n["rows"]),
                            "fio": f, "cpu_per_mreq": v and v["cpu_per_mreq"],
                            "null_cpu_per_mreq": n["cpu"] / n["reqs"] * 1e6 if n and n["reqs"] else None,
                            "cpu_us": us_or_none(v and v["timed_cpu_per_req"]),
                            "null_cpu_us": us_or_none(n and n["timed_cpu_per_req"]),
                            "rss_mib": max((x["rss_kib"] for x in vs if x["rss_kib"]),
                                           default=0) / 1024 or None,
                            "ratio_range": (min(pair), max(pair)) if pair else None,
                            "stall": v and v["stall"], "outside": v and v["outside_stops"],
                            "fio_outside": fio_tail,
                            "runs": len(vs)})
            r = results[-1]
            r["syscalls"] = (syscalls_per_request(tmp, a.engine, guests, wl, name, extra)
                             if not a.vblkd_only else None)
            # Tails side by side: vblkd's p99 over fio's, of the median runs.
            r["p99_ratio"] = (r["vblkd"]["lat_p99_us"] / f["lat_p99_us"]
                              if r["vblkd"] and f and f["lat_p99_us"] else None)
            # The page-cache rows too, for their IOPS per busy IO thread (issue 19: what a host
            # with CPUs to spare would give); one guest's one queue is on one thread either way.
            if (guests is many or guests is wide or guests is mq) and compare and \
                    FAST_PATH not in extra:
                tcomp += compare_io_threads(tmp, a, name, guests, wl, compare, extra)
            elif guests is pc and compare and FAST_PATH not in extra and \
                    not any(x.startswith("--poll-us") for x in extra):
                tcomp += compare_io_threads(tmp, a, name, guests, wl, compare[:1], extra)
        vhost = run_vhost(a, tmp, a.only)
        ipr = {}
        if not a.no_callgrind and points:
            for qd in (1, 32):
                log(f"bench: callgrind, 4k randread QD{qd}")
                ipr[qd] = instructions_per_request(tmp, disk, qd, 1000, 3000)
    finally:
        stop_spinners(spinners)
        shutil.rmtree(tmp, ignore_errors=True)
        if qos is not None:
            os.close(qos)

    nproc, model = machine()
    print(f"vblkd bench: {a.time:g} s per run, {a.repeat} runs of vblkd and fio per point "
          f"(medians; ratio range over the pairs); nproc {nproc}; CPU {model}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; idle CPUs: {idle}")
    print()
    if vhost:
        print_vhost(vhost)
        print()
    if not results:
        return finish(a, idle, results, ipr, vhost, [])
    print("| workload | vblkd IOPS | fio IOPS | IOPS ratio | ratio range | vblkd MB/s | fio MB/s "
          "| MB/s ratio | vblkd p50 / p99 us | fio p50 / p99 us | p99 ratio "
          "| machine stopped, longest ms (vblkd, fio) | p99 us outside stops, left out (vblkd, fio) "
          "| null-engine p50 us "
          "| null-engine IOPS | interrupt path p50 us | added p50 us "
          "| guest traps / req, mean us, vCPU share | CPU us / req (vblkd, null, fio) | CPU ratio "
          "| syscalls / req | RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        v, f, n = r["vblkd"], r["fio"], r["null"]
        ratio = lambda k: (v[k] / f[k]) if v and f and f[k] else None
        # Latencies add up only one request at a time.
        added = (v["lat_p50_us"] - f["lat_p50_us"] - n["lat_p50_us"] - (v["irq_p50_us"] or 0)
                 if v and f and n and r["qd"] == 1 else None)
        rr = r["ratio_range"]
        cpu_ratio = (r["cpu_us"] / f["cpu_per_mreq"]
                     if r["cpu_us"] and f and f["cpu_per_mreq"] else None)
        print(f"| {r['name']} | {fmt(v and v['iops'])} | {fmt(f and f['iops'])} | {fmt(ratio('iops'), 2)} "
              f"| {fmt(rr and rr[0], 2)}..{fmt(rr and rr[1], 2)} "
              f"| {fmt(v and v['mbps'], 1)} | {fmt(f and f['mbps'], 1)} | {fmt(ratio('mbps'), 2)} "
              f"| {fmt(v and v['lat_p50_us'], 1)} / {fmt(v and v['lat_p99_us'], 1)} "
              f"| {fmt(f and f['lat_p50_us'], 1)} / {fmt(f and f['lat_p99_us'], 1)} "
              f"| {fmt(r['p99_ratio'], 2)} | {stall_text(r['stall'])}, {stall_text(f and f['stall'])} "
              f"| {outside_text(r['outside'])}, {outside_text(r['fio_outside'])} "
              f"| {fmt(n and n['lat_p50_us'], 1)} | {fmt(n and n['iops'])} "
              f"| {fmt(v and v['irq_p50_us'], 1)} | {fmt(added, 1)} "
              f"| {fmt(v and v['traps_per_op'], 2)}, {fmt(v and v['trap_mean_us'], 1)}, "
              f"{fmt(v and 100 * v['trap_share'])}% "
              f"| {fmt(r['cpu_us'], 1)}, {fmt(r['null_cpu_us'], 1)}, {fmt(f and f['cpu_per_mreq'], 1)} "
              f"| {fmt(cpu_ratio, 2)} | {fmt(r['syscalls'], 2)} | {fmt(r['rss_mib'], 1)} |")
    print()
    for qd, x in ipr.items():
        if x:
            print(f"vblkd user-space instructions per request (callgrind, 4k randread QD{qd}, marginal "
                  f"over two run lengths): {fmt(x['vblkd'])} in vblkd + {fmt(x['sim'])} in the simulated "
                  f"libxen* = {fmt(x['all'])}")
    print("machine stopped: the share of the timed phase (vblkd; fio: its whole run) when this machine "
          "ran no program, and the longest such stop: a real-time thread (tests/bench/stall-probe) "
          "waking every 1 ms that woke over 2 ms late.  A VM whose host stops its vCPUs (a CPU quota "
          "used up by its vCPUs and the host's work for its disk) shows it; a request in flight "
          "then waits the whole stop, whatever serves it.  p99 outside stops: over the requests that no such stop overlapped "
          "(vblkd: the timed phase, from xensim's log, $XENSIM_LATLOG; fio: the 8-disk rows only, "
          "a run of its own with --write_lat_log, which costs fio a few percent), and the share of "
          "requests left out; not a target figure, the p99 ratio is: what the tail would be on a "
          "machine that is not stopped, the requests the stops delayed after they ended still in.")
    print("syscalls / req: the daemon's system calls (every thread, perf stat -e raw_syscalls:sys_enter, a run "
          "of its own) per guest request, the untimed stamping pass included; - where perf cannot count.")
    print("added p50 (QD1 only) = vblkd p50 - fio p50 - null-engine p50 - interrupt path p50: what vblkd adds "
          "beyond the IO itself and the simulator's notification costs.  The null engine's p50 is the "
          "submission side (the guest's QueueNotify trap and vblkd's handling, no IO; its requests are done "
          "before the guest would sleep); the interrupt path is the completion side the null engine misses, "
          "measured in the aio run by the guest: from vblkd's set_irq_level to the guest seeing the request "
          "done (wake-up, ISR read, ACK), over the requests that waited for an interrupt.")
    print("guest traps: the simulated guest's MMIO accesses per request (QueueNotify, InterruptStatus, "
          "InterruptACK: each a round trip through vblkd while the vCPU waits), their mean wait, and the "
          "share of the guest's vCPU time spent in that wait.")
    print("CPU us / req: the daemon's user+system time (all its threads, /proc/<pid>/task/*/stat sampled "
          "every 50 ms) over the guests' timed phase per request of that phase, with --engine=null beside; "
          "fio: its whole process's user+system time (wait4 rusage: the job threads and the kernel's "
          "io_uring workers that do its buffered writes; a few ms of start-up included) per request.  "
          "CPU ratio: vblkd's over fio's.  "
          "null-engine IOPS: the same guests against vblkd with no IO at all; not a ceiling at depth: "
          "it completes every request at once, so nothing is in flight and the guest keeps notifying.")
    print_io_threads(tcomp, a.time)
    return finish(a, idle, results, ipr, vhost, tcomp)


def finish(a, idle, results, ipr, vhost, tcomp):
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"idle_cpus": idle, "results": results, "instructions_per_request": ipr,
                       "vhost": vhost, "io_threads": tcomp}, f, indent=1)
    if FAILURES:
        print("bench: FAILED: " + "; ".join(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

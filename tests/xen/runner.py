#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Boot QEMU for `make check-xen`, keep a timestamped serial log, and judge the run from its step lines.

usage: runner.py --out DIR [--timeout S] [--stall S] [--host-steps FILE] [--end-pattern RE --grace S]
                 -- qemu-system-aarch64 ARGS...

The domains print `VBLKD-XEN STEP <id> PASS|FAIL|SKIP <s>s <note>` (tests/xen/steps.sh); Dom0 prints the
logs it holds between `VBLKD-XEN LOG-BEGIN <name>` and `VBLKD-XEN LOG-END <name>`, then `VBLKD-XEN DONE`
and powers off.  This writes DIR/serial.log (each line prefixed with seconds since QEMU started) and
DIR/logs/<name>.log, prints a summary, and on failure the failing step's output, the tail of the serial
log and of the vblkd log.  Exit status 0 only if the run finished and no step failed.
"""
import argparse
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import time

LOGIN_PROMPT_RE = re.compile(r'^\S+ login: (?=VBLKD-XEN )')
STEP_RE = re.compile(r'^VBLKD-XEN STEP (\S+) (PASS|FAIL|SKIP) ([0-9.]+)s ?(.*)$')
BEGIN_RE = re.compile(r'^VBLKD-XEN BEGIN (\S+)$')
LOG_BEGIN_RE = re.compile(r'^VBLKD-XEN LOG-BEGIN (\S+)$')
LOG_END_RE = re.compile(r'^VBLKD-XEN LOG-END (\S+)(?: lines=(\d+))?$')
DONE_RE = re.compile(r'^VBLKD-XEN DONE ')


# Sent when the machine hangs.  QEMU's -nographic console multiplexer takes CTRL-a as its escape:
# CTRL-a CTRL-a passes one CTRL-a on, CTRL-a c toggles QEMU's monitor.  First Xen's debug keys: CTRL-a
# three times switches the serial input from Dom0 to Xen, then q (domains and their vCPUs' state),
# r (run queues), e (event channels), 0 (Dom0's vCPU registers), d (each physical CPU's registers and
# stack); then QEMU's monitor for the CPUs' registers, whatever runs on them (Xen or a domain).
XEN_DUMP_KEYS = [b'\x01\x01'] * 3 + [b'q', b'r', b'e', b'0', b'd', b'',
                                     b'\x01c', b'info registers -a\n', b'\x01c']
XEN_DUMP_SECONDS = 30


def marker_line(line):
    """A marker after getty's prompt, from the point it starts: the serial console is shared, and
    the prompt ("dom0 login: ") ends without a newline.  Nothing else is cut: a step's output
    can quote a guest's markers ("    guest: VBLKD-XEN STEP ..."), which are not Dom0's steps."""
    m = LOGIN_PROMPT_RE.match(line)
    return line[m.end():] if m else line


def run_qemu(cmd, out, timeout, done_re, grace, stall):
    """Run QEMU; return (lines, how it ended, wall seconds, peak RSS in MiB).

    A machine that prints nothing for `stall` seconds, or is still running at `timeout`, gets
    Xen's debug keys and XEN_DUMP_SECONDS to answer them before it is stopped."""
    start = time.monotonic()
    lines = []
    ended = 'timeout'
    done_at = None
    last_out = 0.0
    dump_at = None
    keys = []
    next_key_at = 0.0
    log = open(os.path.join(out, 'serial.log'), 'w', encoding='utf-8')
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        log.close()
        sys.exit('check-xen: cannot run %s: %s (scripts/deps.sh xen installs it)' % (cmd[0], e))
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b''
    in_log = False
    try:
        while True:
            now = time.monotonic() - start
            if dump_at is None and done_at is None and (now > timeout or now - last_out > stall):
                ended = 'timeout' if now > timeout else 'stall'
                print('check-xen: %s after %.0f s: asking Xen for its state (debug keys)'
                      % ('no output for %.0f s' % (now - last_out) if ended == 'stall'
                         else 'time limit', now), flush=True)
                log.write('[%7.1f] ===== check-xen: %s; Xen debug keys follow =====\n' % (now, ended))
                dump_at = now
                keys = list(XEN_DUMP_KEYS)
            if dump_at is not None:
                if now - dump_at >= XEN_DUMP_SECONDS:
                    break
                # One key at a time: the UART takes a few bytes only, and Xen answers each key at length.
                if keys and now >= next_key_at:
                    next_key_at = now + 1.5
                    try:
                        proc.stdin.write(keys.pop(0))
                        proc.stdin.flush()
                    except OSError:
                        keys = []
            if done_at is not None and now - done_at >= grace:
                ended = 'done'
                break
            if not sel.select(timeout=1.0):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            last_out = time.monotonic() - start
            if not chunk:
                if dump_at is None:
                    ended = 'done' if done_at is not None else 'qemu-exit'
                break
            buf += chunk
            *complete, buf = buf.split(b'\n')
            for raw in complete:
                line = raw.decode('utf-8', 'replace').replace('\r', '')
                t = time.monotonic() - start
                log.write('[%7.1f] %s\n' % (t, line))
                line = marker_line(line)
                lines.append(line)
                # Progress: step lines as they come, not the copies inside dumped logs.
                if LOG_BEGIN_RE.match(line):
                    in_log = True
                elif LOG_END_RE.match(line):
                    in_log = False
                elif not in_log and (STEP_RE.match(line) or done_re.match(line)):
                    print('  [%6.1fs] %s' % (t, line), flush=True)
                if not in_log and done_re.match(line) and dump_at is None:
                    done_at = t
                    if grace == 0:
                        ended = 'done'
                        break
            if ended == 'done':
                break
        if buf:
            lines.append(buf.decode('utf-8', 'replace').replace('\r', ''))
            log.write('[%7.1f] %s\n' % (time.monotonic() - start, lines[-1]))
    finally:
        log.close()
        if proc.poll() is None:
            # Only the QEMU this runner started (its own session).
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    wall = time.monotonic() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return lines, ended, wall, rss


def parse(lines):
    """Steps (id, verdict, seconds, note, output lines), the named logs, and the ids of the steps
    that began and never reported (their line lost, or the step never ended)."""
    steps, logs, unreported = [], {}, []
    current, output, log_name = None, [], None
    for line in lines:
        if log_name is not None:
            m = LOG_END_RE.match(line)
            if m:
                if m.group(2) is not None and int(m.group(2)) != len(logs[log_name]):
                    print('check-xen: warning: log %s arrived with %d of its %s lines'
                          % (log_name, len(logs[log_name]), m.group(2)))
                log_name = None
            else:
                logs[log_name].append(line)
            continue
        m = LOG_BEGIN_RE.match(line)
        if m:
            log_name = m.group(1)
            logs[log_name] = []
            continue
        m = BEGIN_RE.match(line)
        if m:
            if current is not None:
                unreported.append(current)
            current, output = m.group(1), []
            continue
        m = STEP_RE.match(line)
        if m:
            out = output if m.group(1) == current else []
            steps.append((m.group(1), m.group(2), float(m.group(3)), m.group(4), out))
            if current is not None and m.group(1) != current:
                unreported.append(current)
            current, output = None, []
            continue
        if current is not None:
            output.append(line)
    if current is not None:
        unreported.append(current)
    return steps, logs, unreported


def step_output(step, logs):
    """The output of a failed step; a guest's steps are found in that guest's console log."""
    sid, _, _, _, out = step
    if out or ':' not in sid:
        return out
    guest, inner = sid.split(':', 1)
    for g in parse(logs.get('guest-' + guest, []))[0]:
        if g[0] == inner:
            return g[4]
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--timeout', type=float, default=900)
    ap.add_argument('--host-steps', help='step lines of the host-side preparation, to include')
    ap.add_argument('--end-pattern', default=DONE_RE.pattern,
                    help='the line that ends the run (default: Dom0 DONE)')
    ap.add_argument('--grace', type=float, default=20,
                    help='seconds QEMU gets to exit by itself after the end line (Dom0 powers off)')
    ap.add_argument('--stall', type=float, default=120,
                    help='seconds without serial output after which the machine counts as hung')
    ap.add_argument('qemu', nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.qemu[1:] if args.qemu[:1] == ['--'] else args.qemu
    os.makedirs(os.path.join(args.out, 'logs'), exist_ok=True)

    print('check-xen: booting QEMU (serial log: %s/serial.log)' % args.out, flush=True)
    lines, ended, wall, rss = run_qemu(cmd, args.out, args.timeout, re.compile(args.end_pattern),
                                       args.grace, args.stall)
    steps, logs, unreported = parse(lines)
    for name, body in logs.items():
        with open(os.path.join(args.out, 'logs', name + '.log'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(body) + '\n')

    host = []
    if args.host_steps and os.path.exists(args.host_steps):
        with open(args.host_steps, encoding='utf-8') as f:
            host = [(m.group(1), m.group(2), float(m.group(3)), m.group(4), [])
                    for m in map(STEP_RE.match, f.read().splitlines()) if m]
    allsteps = host + steps
    counts = {v: sum(1 for s in allsteps if s[1] == v) for v in ('PASS', 'FAIL', 'SKIP')}

    print('\ncheck-xen: steps (wall seconds measured where they ran)')
    for sid, verdict, secs, note, _ in allsteps:
        print('  %-4s %7.2f  %-28s %s' % (verdict, secs, sid, note))
    print('check-xen: QEMU ran %.1f s, peak RSS %.0f MiB, ended: %s; %d pass, %d fail, %d skip'
          % (wall, rss, ended, counts['PASS'], counts['FAIL'], counts['SKIP']))

    problems = []
    if ended != 'done':
        problems.append({'timeout': 'the run did not finish within %.0f s' % args.timeout,
                         'stall': 'the machine hung: no output for %.0f s (Xen\'s state is at the end'
                                  ' of serial.log)' % args.stall,
                         'qemu-exit': 'QEMU exited before Dom0 finished the scenario'}[ended])
    if not steps:
        problems.append('no step reported from inside the machine')
    # A step that never reported counts as failed, whether the step or its line went missing.
    if ended == 'done':
        problems += ['step %s began and never reported' % sid for sid in unreported]
    failed = [s for s in allsteps if s[1] == 'FAIL']
    if not failed and not problems:
        print('check-xen: PASS')
        return 0

    tail = lambda seq, n: seq[-n:] if len(seq) > n else seq
    print('\n===== tail of the serial log (%s/serial.log) =====' % args.out)
    with open(os.path.join(args.out, 'serial.log'), encoding='utf-8') as f:
        print(''.join(tail(f.readlines(), 60)), end='')
    if any(s[0].startswith('dom0:') for s in steps):
        print('===== tail of the vblkd log =====')
        if 'vblkd' in logs:
            print('\n'.join(tail(logs['vblkd'], 40)))
        else:
            print('(not available: the run ended before Dom0 printed it)')
    for s in failed:
        print('===== failing step %s: %s =====' % (s[0], s[3]))
        print('\n'.join(tail(step_output(s, logs), 40)))
    for p in problems:
        print('check-xen: ' + p)
    print('check-xen: FAIL (%s)' % ', '.join([s[0] for s in failed] + problems))
    return 1


if __name__ == '__main__':
    sys.exit(main())

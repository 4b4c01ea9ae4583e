#!/usr/bin/env node
// The per-system-call cost of a seccomp filter: tight loops of one system call,
// timed, for calls the filter treats in the two ways that cost differently. Run
// it unconfined and under the filter (bench/seccomp/README.md, run.sh); the
// difference per call is the filter's cost.
//
//   node loop.mjs [--n 100000] [--repeat 9] [--json]
//
// Cases:
//   getppid  process.ppid → getppid(2), the cheapest call there is
//   stat     fs.statSync → statx(2)
//            Both are allowed whatever their arguments, so the kernel's seccomp
//            action cache (Linux 5.11+) lets them through without running the
//            filter: their cost should not change.
//   fchmod   fs.fchmodSync(fd, 0o644) → fchmod(2), allowed only without S_ISUID
//            and S_ISGID: the filter runs on every call and reads the mode
//   isatty   tty.isatty(fd) → ioctl(fd, TCGETS), allowed unless the request is
//            TIOCSTI or TIOCLINUX: the filter runs on every call
// The cases run interleaved, --repeat rounds of --n calls each; each reports its
// best round (the least disturbed by the rest of the machine), in ns per call.
import { closeSync, fchmodSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isatty } from 'node:tty';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('n', 100_000);
const REPEAT = arg('repeat', 9);
const JSON_OUT = process.argv.includes('--json');

const dir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), 'tsbox-seccomp-bench-'));
const file = join(dir, 'f');
const fd = openSync(file, 'w', 0o644);

let sink = 0;
const cases = {
  getppid: () => {
    // process.ppid is a getter that makes the system call each time.
    for (let i = 0; i < N; i++) sink += process.ppid;
  },
  stat: () => {
    for (let i = 0; i < N; i++) sink += statSync(file).size;
  },
  fchmod: () => {
    for (let i = 0; i < N; i++) fchmodSync(fd, 0o644);
  },
  isatty: () => {
    for (let i = 0; i < N; i++) sink += isatty(fd) ? 1 : 0;
  },
};

/** The Seccomp line of /proc/self/status: 0 none, 2 a filter. */
function seccompMode() {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Seccomp:'));
  return line ? Number(line.split(/\s+/)[1]) : null;
}

const best = Object.fromEntries(Object.keys(cases).map((k) => [k, Infinity]));
try {
  for (const fn of Object.values(cases)) fn(); // warm up: JIT, dentry and inode caches
  for (let r = 0; r < REPEAT; r++) {
    for (const [name, fn] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      fn();
      best[name] = Math.min(best[name], Number(process.hrtime.bigint() - t0) / N);
    }
  }
} finally {
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
}

const results = Object.entries(best).map(([name, ns]) => ({ case: name, nsPerCall: Math.round(ns * 10) / 10 }));
const mode = seccompMode();
if (JSON_OUT) {
  console.log(JSON.stringify({ seccomp: mode, n: N, repeat: REPEAT, results, sink: sink > 0 }));
} else {
  console.log(`Seccomp: ${mode ?? '?'} (0 none, 2 filter); best of ${REPEAT} rounds of ${N} calls`);
  for (const r of results) console.log(`${r.case.padEnd(8)} ${r.nsPerCall.toFixed(1).padStart(8)} ns/call`);
}

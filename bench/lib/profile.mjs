// Where the time goes: syscalls per container (strace -f -c), CPU per container
// (perf stat, software counters: this VM has no hardware ones), and tsbox's own
// --trace, step by step, for the CLI and for the API in a long-lived process.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { spawn as tsboxSpawn } from 'tsbox';

import { quantile } from './measure.mjs';
import { drainPipes, live, peerStdio } from './peers.mjs';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const API_LOOP = join(REPO, 'bench/lib/api-loop.mjs');
const PROFILED = ['tsbox-cli', 'runc', 'crun', 'bwrap', 'unshare', 'plain'];

const median = (xs) => quantile([...xs].sort((a, b) => a - b), 0.5);

/** Runs argv to its end; resolves with { code, stderr, ms }. */
function run(argv, { fd, pipes = false } = {}) {
  return new Promise((resolve, reject) => {
    const stdio = peerStdio(pipes, true);
    if (fd !== undefined) stdio.push(fd);
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { stdio });
    drainPipes(child, pipes);
    live.add(child);
    child.once('close', () => live.delete(child));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr, ms: performance.now() - t0 }));
  });
}

/** Runs a peer's command once, wrapped in `wrap` (strace, perf). */
async function runPeer(peer, wrap) {
  const fd = peer.openFd?.();
  try {
    const r = await run([...wrap, ...peer.argv('true')], { fd, pipes: peer.pipes });
    if (r.code !== 0) throw new Error(`exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    return r;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Parses `strace -c` output into { syscall: { calls } }. */
export function parseStrace(text) {
  const out = {};
  for (const line of text.split('\n')) {
    // % time, seconds, usecs/call, calls, [errors,] syscall
    const m = line.match(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/);
    if (m && m[2] !== 'total') out[m[2]] = { calls: Number(m[1]) };
  }
  return out;
}

function addInto(acc, counts, sign = 1) {
  for (const [k, v] of Object.entries(counts)) {
    acc[k] ??= { calls: 0 };
    acc[k].calls += sign * v.calls;
  }
}

function straceSummary(acc, containers) {
  const per = Object.entries(acc)
    .map(([syscall, v]) => ({ syscall, callsPerContainer: v.calls / containers }))
    .filter((x) => x.callsPerContainer > 0.05)
    .sort((a, b) => b.callsPerContainer - a.callsPerContainer);
  const calls = (name) => per.find((x) => x.syscall === name)?.callsPerContainer ?? 0;
  return {
    callsPerContainer: per.reduce((s, x) => s + x.callsPerContainer, 0),
    processesPerContainer: calls('execve'),
    clonesPerContainer: calls('clone') + calls('clone3') + calls('fork') + calls('vfork'),
    // strace's times are mostly threads blocked in futex or wait4 under the
    // tracer: the counts are what compare.
    top: per.slice(0, 15),
  };
}

async function straceOf(argvOrPeer, dir, tag) {
  const file = join(dir, `strace-${tag}`);
  const wrap = ['strace', '-f', '-c', '-o', file, '--'];
  if (Array.isArray(argvOrPeer)) {
    const r = await run([...wrap, ...argvOrPeer]);
    if (r.code !== 0) throw new Error(`exited ${r.code}: ${r.stderr.trim()}`);
  } else {
    await runPeer(argvOrPeer, wrap);
  }
  const counts = parseStrace(readFileSync(file, 'utf8'));
  rmSync(file, { force: true });
  return counts;
}

async function strace(m, peers, runs, dir) {
  const out = {};
  // The API: a Node process launching 1+runs containers, minus one launching 1.
  try {
    const acc = {};
    addInto(acc, await straceOf([process.execPath, API_LOOP, m.rootfs, String(runs)], dir, 'api'));
    addInto(acc, await straceOf([process.execPath, API_LOOP, m.rootfs, '0'], dir, 'api0'), -1);
    out['tsbox-api'] = straceSummary(acc, runs);
  } catch (err) {
    out['tsbox-api'] = { error: err.message };
  }
  for (const p of peers.filter((p) => PROFILED.includes(p.name))) {
    try {
      const acc = {};
      for (let i = 0; i < runs; i++) addInto(acc, await straceOf(p, dir, p.name));
      out[p.name] = straceSummary(acc, runs);
    } catch (err) {
      out[p.name] = { error: err.message };
    }
  }
  return out;
}

const PERF_EVENTS = ['task-clock', 'page-faults', 'context-switches'];

function parsePerf(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const f = line.split(',');
    if (f.length > 3 && PERF_EVENTS.includes(f[2])) out[f[2]] = Number(f[0]);
  }
  return out;
}

async function perfOf(argvOrPeer, dir, tag) {
  const file = join(dir, `perf-${tag}`);
  const wrap = ['perf', 'stat', '-x', ',', '-e', PERF_EVENTS.join(','), '-o', file, '--'];
  if (Array.isArray(argvOrPeer)) {
    const r = await run([...wrap, ...argvOrPeer]);
    if (r.code !== 0) throw new Error(`exited ${r.code}: ${r.stderr.trim()}`);
  } else {
    await runPeer(argvOrPeer, wrap);
  }
  const v = parsePerf(readFileSync(file, 'utf8'));
  rmSync(file, { force: true });
  return v;
}

async function perf(m, peers, runs, dir) {
  const hw = await run(['perf', 'stat', '-x', ',', '-e', 'instructions', 'true']).catch((err) => ({ code: -1, stderr: err.message }));
  if (hw.code === -1 || /not found|No such file/.test(hw.stderr)) return { error: 'perf is not installed' };
  const hardware = hw.code === 0 && !hw.stderr.includes('<not supported>');
  const per = (acc, n) => ({ taskClockMs: acc['task-clock'] / n, pageFaults: acc['page-faults'] / n, contextSwitches: acc['context-switches'] / n });
  const sum = (acc, v, sign = 1) => {
    for (const e of PERF_EVENTS) acc[e] = (acc[e] ?? 0) + sign * (v[e] ?? 0);
  };
  const out = {};
  try {
    const acc = {};
    sum(acc, await perfOf([process.execPath, API_LOOP, m.rootfs, String(runs)], dir, 'api'));
    sum(acc, await perfOf([process.execPath, API_LOOP, m.rootfs, '0'], dir, 'api0'), -1);
    out['tsbox-api'] = per(acc, runs);
  } catch (err) {
    out['tsbox-api'] = { error: err.message };
  }
  for (const p of peers.filter((p) => PROFILED.includes(p.name) || p.name === 'node')) {
    try {
      const acc = {};
      for (let i = 0; i < runs; i++) sum(acc, await perfOf(p, dir, p.name));
      out[p.name] = per(acc, runs);
    } catch (err) {
      out[p.name] = { error: err.message };
    }
  }
  return { hardware, peers: out };
}

/** `tsbox[pid] +1.234ms what` → { at, step }, with the variable parts of `what` dropped. */
export function parseTrace(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^tsbox\[\d+\] \+([\d.]+)ms (.*)$/);
    if (!m) continue;
    const what = m[2];
    const key = what.split(':')[0];
    let step = key;
    // Steps that repeat once per path keep the path, so that they stay apart.
    if (key === 'mount') step = `mount ${what.match(/ on (\S+)/)?.[1] ?? '?'}`;
    else if (['symlink', 'file', 'mask', 'read-only'].includes(key)) step = `${key} ${what.match(/^[^:]+: (\S+)/)?.[1] ?? '?'}`;
    else if (key === 'exec') step = what.includes('under init') ? 'exec (init forked, command exec)' : 'exec';
    out.push({ at: Number(m[1]), step });
  }
  return out;
}

/** Median offset and median step-to-step gap of each step over several traces. */
function traceSummary(traces, extra = []) {
  const order = [];
  const at = new Map();
  const delta = new Map();
  for (const t of traces) {
    t.forEach((s, i) => {
      if (!at.has(s.step)) {
        order.push(s.step);
        at.set(s.step, []);
        delta.set(s.step, []);
      }
      at.get(s.step).push(s.at);
      delta.get(s.step).push(i === 0 ? s.at : s.at - t[i - 1].at);
    });
  }
  return [...order.map((step) => ({ step, atMs: median(at.get(step)), deltaMs: median(delta.get(step)) })), ...extra];
}

async function traceCli(m, runs) {
  const traces = [];
  const walls = [];
  for (let i = 0; i < runs; i++) {
    const r = await run([process.execPath, join(REPO, 'bin/tsbox.js'), 'run', '--trace', '--rootfs', m.rootfs, '--', '/bin/true']);
    if (r.code !== 0) throw new Error(`tsbox run --trace exited ${r.code}: ${r.stderr.trim()}`);
    const t = parseTrace(r.stderr);
    traces.push(t);
    walls.push({ wall: r.ms, last: t.at(-1)?.at ?? 0 });
  }
  return traceSummary(traces, [
    { step: '(outside the trace: Node start-up, loading the CLI, exit)', atMs: median(walls.map((w) => w.wall)), deltaMs: median(walls.map((w) => w.wall - w.last)) },
  ]);
}

/** The API with trace on, in this process: Node's lines go to our stderr, so they are caught there. */
async function traceApi(m, runs) {
  const traces = [];
  const write = process.stderr.write;
  try {
    for (let i = 0; i <= runs; i++) {
      let text = '';
      process.stderr.write = (chunk, ...rest) => {
        text += String(chunk);
        const cb = rest.find((x) => typeof x === 'function');
        cb?.();
        return true;
      };
      const t0 = performance.now();
      const c = await tsboxSpawn(['/bin/true'], { rootfs: m.rootfs, trace: true, stdio: ['ignore', 'ignore', 'pipe'] });
      c.stderr.setEncoding('utf8').on('data', (d) => (text += d));
      await c.wait();
      const wall = performance.now() - t0;
      // The lines of three processes arrive out of order: sort by offset.
      const t = parseTrace(text).sort((a, b) => a.at - b.at);
      t.push({ at: wall, step: 'wait() resolved' });
      if (i > 0) traces.push(t); // the first warms up
    }
  } finally {
    process.stderr.write = write;
  }
  return traceSummary(traces);
}

export async function profile(m, peers, { runs, log }) {
  const dir = mkdtempSync(join(m.dir, 'profile-'));
  const straceRuns = Math.min(runs, 5);
  const out = { runs, straceRuns };
  try {
    log(`bench: profile — strace -f -c (${straceRuns} containers per peer)`);
    out.strace = await strace(m, peers, straceRuns, dir);
    log(`bench: profile — perf stat (${runs} containers per peer)`);
    out.perf = await perf(m, peers, runs, dir);
    log(`bench: profile — tsbox --trace (${runs} runs, CLI and API)`);
    out.trace = {};
    for (const [mode, fn] of [['CLI (a fresh process each time)', traceCli], ['API (long-lived process)', traceApi]]) {
      try {
        out.trace[mode] = await fn(m, runs);
      } catch (err) {
        out.trace[mode] = [{ step: `error: ${err.message}`, atMs: null, deltaMs: null }];
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

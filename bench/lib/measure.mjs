// The measurements. Every phase goes round the peers in a fresh random order each
// round, so that whatever the machine does meanwhile (another build, a timer,
// the page cache) falls on all of them alike.
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { inspect, isolation, tree } from './procs.mjs';

export function shuffle(list) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Quantile q of sorted values, linearly interpolated (R's type 7). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo);
}

export function summarize(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p99: quantile(s, 0.99),
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : null,
    min: s[0] ?? null,
    max: s.at(-1) ?? null,
  };
}

/** One container from start to its end, in ms. */
export async function once(peer, work = 'true') {
  const t0 = performance.now();
  const h = await peer.start(work);
  await h.done;
  return performance.now() - t0;
}

/**
 * Starts `work` once per peer with stderr captured, so a peer that cannot run
 * here says why before anything is timed. Returns the peers that ran.
 */
export async function preflight(peers, log) {
  const ok = [];
  const failed = {};
  for (const p of peers) {
    try {
      const h = await p.start('true', { capture: true });
      await h.done;
      ok.push(p);
    } catch (err) {
      failed[p.name] = String(err.message ?? err);
      log(`  ${p.label}: cannot run here, left out: ${failed[p.name]}`);
    }
  }
  return { ok, failed };
}

/** Sequential latency: `n` rounds, every peer once per round, in a shuffled order. */
export async function latency(peers, { n, warmup, onRound }) {
  const times = Object.fromEntries(peers.map((p) => [p.name, []]));
  const errors = Object.fromEntries(peers.map((p) => [p.name, 0]));
  for (let r = -warmup; r < n; r++) {
    for (const p of shuffle(peers)) {
      try {
        const ms = await once(p);
        if (r >= 0) times[p.name].push(ms);
      } catch {
        errors[p.name]++;
      }
    }
    if (r >= 0) onRound?.(r + 1);
  }
  return Object.fromEntries(peers.map((p) => [p.name, { ...summarize(times[p.name]), errors: errors[p.name], samples: times[p.name].map((t) => Math.round(t * 1000) / 1000) }]));
}

/**
 * Throughput: `concurrency` loops, each starting the next container as soon as
 * its last one ended, for `durationMs`; then it waits for the ones still running.
 * Containers completed per second of the whole span, and each one's time
 * (back to back: a pool's refill competes with its calls here, where the
 * latency rounds interleave the peers and give it time).
 */
async function burst(peer, concurrency, durationMs) {
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  let completed = 0;
  let errors = 0;
  const ms = [];
  const loop = async () => {
    while (performance.now() < deadline) {
      try {
        ms.push(await once(peer));
        completed++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { completed, errors, seconds: (performance.now() - t0) / 1000, ms };
}

export async function throughput(peers, { levels, rounds, durationMs, onRound }) {
  const acc = {};
  for (const p of peers) for (const c of levels) acc[`${p.name}@${c}`] = { completed: 0, errors: 0, seconds: 0, ms: [] };
  for (let r = 0; r < rounds; r++) {
    for (const c of shuffle(levels)) {
      for (const p of shuffle(peers)) {
        const b = await burst(p, c, durationMs);
        const a = acc[`${p.name}@${c}`];
        a.completed += b.completed;
        a.errors += b.errors;
        a.seconds += b.seconds;
        a.ms.push(...b.ms);
      }
    }
    onRound?.(r + 1);
  }
  const out = {};
  for (const p of peers) {
    out[p.name] = {};
    for (const c of levels) {
      const a = acc[`${p.name}@${c}`];
      const { median, p99 } = summarize(a.ms);
      out[p.name][c] = { perSecond: a.completed / a.seconds, completed: a.completed, errors: a.errors, seconds: a.seconds, median, p99 };
    }
  }
  return out;
}

/**
 * Memory and isolation, seen from the outside while the container runs
 * `sleep 1`: the process tree under what the bench started, the peak RSS
 * (VmHWM) of each process, and the isolation of the `sleep` process itself.
 * Processes in the host's pid namespace are the peer's supervisors (tsbox-init,
 * runc, crun, bwrap's parent, ...); the rest belong to the container.
 */
export async function inside(peer, hostPid = process.pid) {
  const host = inspect(hostPid);
  const h = await peer.start('sleep', { capture: true });
  try {
    const root = h.rootPid();
    let procs = [];
    let target;
    for (let i = 0; i < 200 && !target; i++) {
      procs = tree(root).map(inspect).filter(Boolean);
      target = procs.find((p) => p.comm === 'sleep');
      if (!target) await sleep(5);
    }
    if (!target) throw new Error(`${peer.label}: no sleep process appeared under pid ${root}`);
    // Let setup settle (a supervisor may still be finishing), then read again.
    await sleep(150);
    procs = tree(root).map(inspect).filter(Boolean);
    target = procs.find((p) => p.comm === 'sleep') ?? target;
    const supervisors = procs.filter((p) => p.ns.pid === host.ns.pid && p.pid !== target.pid);
    const contained = procs.filter((p) => p.ns.pid !== host.ns.pid || p.pid === target.pid);
    const row = (p) => ({ pid: p.pid, comm: p.comm, vmHWMKiB: p.vmHWMKiB, vmRSSKiB: p.vmRSSKiB });
    return {
      isolation: isolation(target, host),
      supervisors: supervisors.map(row),
      container: contained.map(row),
      supervisorHWMKiB: supervisors.reduce((s, p) => s + (p.vmHWMKiB ?? 0), 0),
    };
  } finally {
    await h.done;
  }
}

/**
 * What a pool of `size` ready sandboxes costs the host: the memory charged
 * to their cgroups (their PID 1s' pages and the kernel objects charged with
 * them: page tables, the overlay's and tmpfs mounts' memory), plus the
 * proportional set size of their monitors (tsbox-init, outside those
 * cgroups). MemAvailable's drop is recorded too, for what it is worth on a
 * shared machine.
 */
export async function poolMemory(rootfs, size, trials = 3) {
  const runs = [];
  for (let i = 0; i < trials; i++) runs.push(await poolMemoryOnce(rootfs, size));
  const drops = runs.map((r) => r.memAvailableDropKiB).sort((a, b) => a - b);
  const last = runs.at(-1);
  // Other work on the machine only ever adds to a drop: the smallest of the
  // trials is the closest to the pool's own.
  return { ...last, trials, memAvailableDropKiB: drops[0], memAvailableDropsKiB: drops };
}

async function poolMemoryOnce(rootfs, size) {
  const { createPool } = await import('tsbox');
  const available = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]);
  const pss = (pid) => {
    try {
      return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]);
    } catch {
      return 0;
    }
  };
  await sleep(500);
  const before = available();
  const pool = createPool({ rootfs, size });
  try {
    for (let i = 0; i < 600 && pool.stats().ready < size; i++) await sleep(50);
    const ready = pool.stats().ready;
    await sleep(500);
    const after = available();
    // The monitors are this process's children; each one's child is a sandbox's PID 1.
    const monitors = tree(process.pid)
      .map(inspect)
      .filter((p) => p && p.comm === 'tsbox-init' && readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(' ')[3] === String(process.pid));
    let cgroupKiB = 0;
    for (const m of monitors) {
      const pid1 = tree(m.pid)[1];
      if (pid1 === undefined) continue;
      for (const line of readFileSync(`/proc/${pid1}/cgroup`, 'utf8').split('\n')) {
        const [, controllers, path] = line.split(':');
        const file = controllers === 'memory' ? `/sys/fs/cgroup/memory${path}/memory.usage_in_bytes` : controllers === '' && existsSync('/sys/fs/cgroup/cgroup.controllers') ? `/sys/fs/cgroup${path}/memory.current` : null;
        if (file && existsSync(file)) cgroupKiB += Number(readFileSync(file, 'utf8')) / 1024;
      }
    }
    const monitorPssKiB = monitors.reduce((sum, m) => sum + pss(m.pid), 0);
    return { size, ready, monitors: monitors.length, monitorPssKiB, cgroupKiB: Math.round(cgroupKiB), totalKiB: Math.round(cgroupKiB + monitorPssKiB), memAvailableDropKiB: before - after };
  } finally {
    await pool.close();
  }
}

/**
 * What an image costs the CLI over a directory, inside the process: `pairs`
 * interleaved runs of each CLI peer with `--trace`, each timed from the CLI's
 * entry to the exit report (the trace's `start` line, which says how long
 * after bin/tsbox.js's first line the launch began, plus the `exited`
 * line's offset). Node's own start-up and exit, alike for both and noisy
 * (two medians of ~125 ms processes differ by ±0.7 ms even at n=600), are
 * left out. Returns the medians, the median of the pairs' differences, and
 * the difference before the launch and in it; null without both peers.
 */
export async function cliImageCost(peers, pairs = 40) {
  const dir = peers.find((p) => p.name === 'tsbox-cli');
  const image = peers.find((p) => p.name === 'tsbox-cli-image');
  if (!dir || !image) return null;
  const { execFile } = await import('node:child_process');
  const traced = (p) => {
    // `run` first, then --trace before its other flags.
    const [node, cli, sub, ...rest] = p.argv('true');
    return new Promise((resolve, reject) => {
      execFile(node, [cli, sub, '--trace', ...rest], { env: { ...process.env, ...p.env }, timeout: 60_000 }, (err, _out, stderr) => {
        if (err) return reject(new Error(`${p.label} --trace: ${err.message}`));
        const start = /start: the launch begins ([\d.]+) ms after tsbox's entry/.exec(stderr);
        const exited = /\+([\d.]+)ms exited:/.exec(stderr);
        if (!start || !exited) return reject(new Error(`${p.label} --trace: no start or exited line`));
        resolve({ start: Number(start[1]), launch: Number(exited[1]) });
      });
    });
  };
  const runs = { dir: [], image: [] };
  for (let i = 0; i < pairs; i++) {
    for (const [k, p] of i % 2 === 0 ? [['dir', dir], ['image', image]] : [['image', image], ['dir', dir]]) runs[k].push(await traced(p));
  }
  const med = (k, part) => summarize(runs[k].map((r) => (part ? r[part] : r.start + r.launch))).median;
  // The median of each pair's difference: a pair runs back to back, so what
  // drifts over the run falls on both.
  const paired = summarize(runs.image.map((r, i) => r.start + r.launch - runs.dir[i].start - runs.dir[i].launch)).median;
  return { pairs, dirMs: med('dir'), imageMs: med('image'), overheadMs: paired, beforeLaunchMs: med('image', 'start') - med('dir', 'start'), launchMs: med('image', 'launch') - med('dir', 'launch') };
}

#!/usr/bin/env node
// An interleaved A/B of the attached API launch path between two builds of
// tsbox: this checkout and another (a worktree of an earlier commit, built
// with `npm run build`). One worker process per build, each launching
// `/bin/true` in the same rootfs when told to; the parent alternates between
// them, one launch at a time, so both see the same machine. As root.
//
// --mode pool times the warm pool instead (issue 16): each worker makes a
// pool of --size sandboxes (stdio piped, as the bench's tsbox-pool peer),
// waits until they are all ready, and times `pool.run(['/bin/true'])` from
// the call to its result. Its refill runs meanwhile, as in the bench.
// --call JSON gives each pooled call those options (`{"cwd":"/tmp"}`: a
// process that differs from the one each sandbox forked ahead).
//
// --mode run times `run(['/bin/true'], { rootfs })`: the API with its
// output captured (stdio piped), where the result waits for the streams'
// end as well as the exit; --mode api spawns with stdio 'ignore', as the
// bench's API rows do.
//
// --mode cli times the CLI instead: a process `node CHECKOUT/bin/tsbox.js
// run --rootfs DIR -- /bin/true` per launch, from its spawn to its exit;
// with --image REF, `run --pull never REF /bin/true` (the image in the
// store of $TSBOX_STORAGE, which both builds read).
//
// --gap MS waits MS before each launch (a launch after an idle spell).
//
//   node bench/ab.mjs --base /tmp/base --rootfs DIR [--mode api|run|pool|cli] [--image REF] [--size 8] [--n 200] [--warmup 10] [--gap MS] [--call JSON]
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const base = args.get('base');
const rootfs = args.get('rootfs');
const n = Number(args.get('n') ?? 200);
const warmup = Number(args.get('warmup') ?? 10);
const mode = args.get('mode') ?? 'api';
const size = Number(args.get('size') ?? 8);
const image = args.get('image');
// Idle ms before each launch: a launch after an idle spell, as a service's
// next request comes, rather than back to back (v1 cgroup moves by pid
// share a grace period back to back, and wait for one after ~20 ms idle).
const gap = Number(args.get('gap') ?? 0);
let call = '{}';
try {
  call = JSON.stringify(JSON.parse(args.get('call') ?? '{}'));
} catch {
  call = null;
}
if (!base || !(rootfs || (mode === 'cli' && image)) || args.has('help') || !['api', 'run', 'pool', 'cli'].includes(mode) || !(size >= 1) || (image && mode !== 'cli') || !(gap >= 0) || call === null || (call !== '{}' && mode !== 'pool')) {
  console.error('usage: node bench/ab.mjs --base CHECKOUT --rootfs DIR [--mode api|run|pool|cli] [--image REF] [--size 8] [--n 200] [--warmup 10] [--gap MS] [--call JSON]');
  process.exit(2);
}
const here = fileURLToPath(new URL('..', import.meta.url));

const WORKER = `
const t = await import(process.argv[1] + '/dist/tsbox.js');
const [rootfs, mode, size, call] = [process.argv[2], process.argv[3], Number(process.argv[4]), JSON.parse(process.argv[5])];
const pool = mode === 'pool' ? t.createPool({ rootfs, size, stdio: 'pipe' }) : null;
while (pool && pool.stats().ready < size) {
  // A pool that cannot build its sandboxes (a bad rootfs) would be waited for forever.
  const s = pool.stats();
  if (s.failed > 0) throw new Error('the pool could not build a sandbox: ' + (s.lastFailure ?? 'no reason given'));
  await new Promise((r) => setTimeout(r, 20));
}
const launch = pool ? () => pool.run(['/bin/true'], call) : mode === 'run' ? () => t.run(['/bin/true'], { rootfs }) : async () => (await t.spawn(['/bin/true'], { rootfs, stdio: 'ignore' })).wait();
const rl = (await import('node:readline')).createInterface({ input: process.stdin });
process.stdout.write('ready\\n');
for await (const line of rl) {
  const t0 = process.hrtime.bigint();
  const r = await launch();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.exitCode !== 0) throw new Error('exit ' + r.exitCode);
  process.stdout.write(ms + '\\n');
}
await pool?.close();
`;

function worker(dir) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', WORKER, dir, rootfs, mode, String(size), call], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    /** Resolves once its pool (in pool mode) is full. */
    async ready() {
      const { value } = await lines.next();
      if (value !== 'ready') throw new Error(`worker for ${dir}: ${value}`);
    },
    async launch() {
      child.stdin.write('go\n');
      const { value } = await lines.next();
      return Number(value);
    },
    async close() {
      child.stdin.end();
      await once(child, 'exit');
    },
  };
}

/** --mode cli: a CLI process per launch, timed from its spawn to its exit. */
function cli(dir) {
  const argv = image ? ['run', '--pull', 'never', image, '/bin/true'] : ['run', '--rootfs', rootfs, '--', '/bin/true'];
  return {
    async ready() {},
    async launch() {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [join(dir, 'bin', 'tsbox.js'), ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`${dir}: tsbox ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
      return ms;
    },
    async close() {},
  };
}

const builds = [
  { name: 'base', w: mode === 'cli' ? cli(base) : worker(base), ms: [] },
  { name: 'this', w: mode === 'cli' ? cli(here) : worker(here), ms: [] },
];
for (const b of builds) await b.w.ready();
for (let i = 0; i < warmup + n; i++) {
  // Alternate which goes first, so neither always follows the other.
  const order = i % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    if (gap > 0) await new Promise((r) => setTimeout(r, gap));
    const ms = await b.w.launch();
    if (i >= warmup) b.ms.push(ms);
  }
}
for (const b of builds) await b.w.close();
const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const row = (b) => ({ build: b.name, median: q(b.ms, 0.5).toFixed(2), p90: q(b.ms, 0.9).toFixed(2), p99: q(b.ms, 0.99).toFixed(2), mean: (b.ms.reduce((a, x) => a + x, 0) / b.ms.length).toFixed(2) });
console.table(builds.map(row));
console.log(`${mode}${image ? ` ${image}` : ''}${call !== '{}' ? ` ${call}` : ''}: this / base, median: ${(q(builds[1].ms, 0.5) / q(builds[0].ms, 0.5)).toFixed(3)} (n=${n} each, interleaved${gap > 0 ? `, ${gap} ms idle before each` : ''})`);

#!/usr/bin/env node
// npm run bench [-- OPTIONS]: tsbox side by side with runc, crun, bubblewrap and
// unshare, in one run. It reports; it asserts nothing. See bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const log = (s) => process.stderr.write(`${s}\n`);

const USAGE = `usage: npm run bench [-- OPTIONS]   (as root)

  --n N              sequential launches per peer (default 200)
  --warmup N         untimed rounds first (default 5)
  --rounds N         throughput rounds (default 3)
  --duration MS      length of one throughput burst (default 1000)
  --concurrency L    throughput levels (default 1,8)
  --peers LIST       only these peers (names as in the JSON: tsbox-api,runc,...)
  --profile-runs N   containers per peer under strace/perf and --trace (default 20)
  --no-profile       skip strace, perf and the --trace breakdown
  --out DIR          where the JSON goes (default bench/results)`;

const { values: opt } = parseArgs({
  options: {
    n: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '1,8' },
    peers: { type: 'string' },
    'profile-runs': { type: 'string', default: '20' },
    'no-profile': { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
const int = (name) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < 0) {
    log(`bench: --${name} must be a whole number, not ${JSON.stringify(opt[name])}\n${USAGE}`);
    process.exit(2);
  }
  return v;
};
const config = {
  n: Math.max(1, int('n')),
  warmup: int('warmup'),
  rounds: Math.max(1, int('rounds')),
  durationMs: Math.max(100, int('duration')),
  levels: opt.concurrency.split(',').map(Number).filter((c) => Number.isInteger(c) && c > 0),
  profileRuns: Math.max(1, int('profile-runs')),
  profile: !opt['no-profile'],
};
if (config.levels.length === 0) {
  log(`bench: --concurrency must list whole numbers above 0, such as 1,8\n${USAGE}`);
  process.exit(2);
}
if (process.getuid() !== 0) {
  log('bench: run as root: the peers create user namespaces with id ranges, cgroups and mounts, and setup installs them with apt-get');
  process.exit(2);
}

const { cleanup } = await import('./lib/cleanup.mjs');
const stateDir = mkdtempSync(join(tmpdir(), 'tsbox-bench-'));
// Container root is an unprivileged host uid for runc and crun (as for tsbox):
// it must be able to reach the rootfs inside.
chmodSync(stateDir, 0o755);
let manifest;
let crunHolder;
let cleaning;
const cleanOnce = () => (cleaning ??= cleanup({ manifest, crunHolder, stateDir, log }));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`bench: ${sig}, cleaning up`);
    cleanOnce().finally(() => process.exit(130));
  });
}

/**
 * crun 1.8 refuses a hybrid cgroup layout whose unified mount has controllers.
 * It runs inside the mount namespace of this holder process, where
 * cgroup.controllers is bind-masked by an empty file; the host is untouched and
 * the mount ends with the holder.
 */
async function startCrunHolder(empty) {
  const controllers = '/sys/fs/cgroup/unified/cgroup.controllers';
  if (!existsSync(controllers) || readFileSync(controllers, 'utf8').trim() === '') return undefined;
  // It waits on a read of its stdin, so it ends with the bench even on SIGKILL.
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${empty} ${controllers} && echo ready && read -r _`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const ready = await new Promise((resolve) => {
    holder.stdout.once('data', () => resolve(true));
    holder.once('exit', () => resolve(false));
  });
  if (!ready) throw new Error('could not start the mount namespace crun runs in (unshare -m + mount --bind)');
  return holder;
}

function version(cmd, args = ['--version']) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

function cgroupMode() {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2';
  if (existsSync('/sys/fs/cgroup/unified/cgroup.controllers')) return 'hybrid';
  return 'v1';
}

try {
  // Packages, the tsbox build, and the rootfs, bundles and filter in stateDir.
  execFileSync('bash', [join(REPO, 'bench/setup.sh'), stateDir], { stdio: ['ignore', 'inherit', 'inherit'] });
  manifest = JSON.parse(readFileSync(join(stateDir, 'manifest.json'), 'utf8'));
  crunHolder = await startCrunHolder(manifest.empty);

  const { definePeers } = await import('./lib/peers.mjs');
  const { preflight, latency, throughput, inside, poolMemory, cliImageCost } = await import('./lib/measure.mjs');
  const { profile } = await import('./lib/profile.mjs');
  const { report } = await import('./lib/report.mjs');

  let peers = definePeers(manifest, { crunHolderPid: crunHolder?.pid });
  if (opt.peers) {
    const want = new Set(opt.peers.split(','));
    peers = peers.filter((p) => want.has(p.name));
  } else {
    peers = peers.filter((p) => !p.optIn);
  }
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    kernel: release(),
    loadavg: loadavg(),
    cgroups: cgroupMode(),
    node: process.version,
    tsbox: version('git', ['-C', REPO, 'describe', '--always', '--dirty']) ?? `${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version} (not a git checkout)`,
    runc: version('runc'),
    crun: version('crun'),
    bwrap: version('bwrap'),
    unshare: version('unshare'),
  };
  const started = new Date();
  log(`bench: ${machine.cpus} cores, Linux ${machine.kernel} (cgroups ${machine.cgroups}), node ${machine.node}; N=${config.n}`);

  log('bench: preflight (each peer once, errors shown)');
  const pre = await preflight(peers, log);
  peers = pre.ok;

  log('bench: memory and isolation (sleep 1 in each container, read from /proc)');
  const insideResults = {};
  for (const p of peers.filter((p) => p.only !== 'true')) {
    try {
      insideResults[p.name] = await inside(p);
    } catch (err) {
      log(`  ${p.label}: ${err.message}`);
    }
  }

  log(`bench: sequential latency, ${config.n} rounds of ${peers.length} peers (+${config.warmup} warm-up)`);
  const step = Math.max(1, Math.round(config.n / 10));
  const lat = await latency(peers, { n: config.n, warmup: config.warmup, onRound: (r) => r % step === 0 && log(`  round ${r}/${config.n}`) });

  let cliImage = null;
  if (peers.some((p) => p.name === 'tsbox-cli') && peers.some((p) => p.name === 'tsbox-cli-image')) {
    log('bench: an image against a directory inside the CLI (--trace: entry to the exit report), 60 interleaved pairs');
    cliImage = await cliImageCost(peers, 60).catch((err) => (log(`  ${err.message}`), null));
  }

  const thrPeers = peers.filter((p) => p.only !== 'true');
  log(`bench: throughput at concurrency ${config.levels.join(', ')}: ${config.rounds} rounds of ${config.durationMs} ms bursts`);
  const thr = await throughput(thrPeers, { levels: config.levels, rounds: config.rounds, durationMs: config.durationMs, onRound: (r) => log(`  round ${r}/${config.rounds}`) });

  const prof = config.profile ? await profile(manifest, peers, { runs: config.profileRuns, log }) : null;

  const { closePeers } = await import('./lib/peers.mjs');
  const poolStats = await closePeers();
  let poolMem = null;
  if (peers.some((p) => p.name === 'tsbox-pool')) {
    log('bench: host memory of a pool of 16 ready sandboxes');
    poolMem = await poolMemory(manifest.rootfs, 16);
  }

  const result = {
    started: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    config,
    machine,
    seccomp: manifest.seccompSummary,
    peers: Object.fromEntries(peers.map((p) => [p.name, { label: p.label, kind: p.kind }])),
    unavailable: pre.failed,
    latencyMs: lat,
    throughput: thr,
    inside: insideResults,
    pool: { stats: poolStats, memory: poolMem },
    cliImage,
    profile: prof,
  };
  const { text, targets, derived } = report(result);
  result.derived = derived;
  result.targets = targets;
  process.stdout.write(text);
  mkdirSync(opt.out, { recursive: true });
  const file = join(opt.out, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`bench: wrote ${file}`);
} catch (err) {
  log(`bench: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await (await import('./lib/peers.mjs')).closePeers().catch(() => {});
  await cleanOnce();
}

// The peers: each one starts the same work — /bin/true (or `sleep 1` for the
// memory and isolation check) in the same busybox-static rootfs — from this Node
// process. tsbox's API runs in-process, as a Node program would use it; every
// other peer is a child_process.spawn, as a Node program would have to use it.
import { spawn as spawnProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createPool, spawn as tsboxSpawn } from 'tsbox';

import { statusField } from './procs.mjs';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TSBOX_CLI = join(REPO, 'bin/tsbox.js');

/** The container's command for each workload. */
const WORK = { true: ['/bin/true'], sleep: ['/bin/sleep', '1'] };

let seq = 0;
/** A container id no other run uses; runc and crun name the cgroup after it. */
const containerId = (peer) => `tsbox-bench-${process.pid}-${peer}-${seq++}`;
export const ID_PREFIX = `tsbox-bench-${process.pid}-`;

/** Processes started and not yet ended: the cleanup kills whatever is left. */
export const live = new Set();
let stopped = false;
/** From now on nothing starts: the cleanup is running. */
export function stopAll() {
  stopped = true;
}
function checkStopped() {
  if (stopped) throw new Error('the bench is stopping');
}

/**
 * A peer's stdio: /dev/null, or with `pipes` a pipe each. crun 1.8 chowns
 * its container's stdio to the container's root, and /dev/null given as
 * stdio is the host's own node: every crun run left the host's /dev/null
 * owned by 0x70000000 (runc leaves /dev/null alone). crun gets pipes.
 */
export function peerStdio(pipes, capture) {
  return pipes ? ['pipe', 'pipe', 'pipe'] : ['ignore', 'ignore', capture ? 'pipe' : 'ignore'];
}

/** With `pipes`, stdin closed and stdout read to its end (stderr is the caller's). */
export function drainPipes(child, pipes) {
  if (!pipes) return;
  child.stdin?.end();
  child.stdout?.resume();
}

/**
 * Starts `argv` and returns { rootPid, done }. `done` resolves when the process
 * has exited and its stdio closed, and rejects unless it exited 0; its message
 * carries stderr when `capture` is set (stderr is /dev/null otherwise).
 */
function exec(argv, { capture = false, extraFd, env, pipes = false } = {}) {
  checkStopped();
  const stdio = peerStdio(pipes, capture);
  if (extraFd !== undefined) stdio.push(extraFd);
  const child = spawnProcess(argv[0], argv.slice(1), { stdio, ...(env ? { env: { ...process.env, ...env } } : {}) });
  drainPipes(child, pipes);
  live.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
  const done = new Promise((resolve, reject) => {
    child.once('error', (err) => {
      live.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')}: exited ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ''}`));
    });
  });
  return { rootPid: () => child.pid, done };
}

/** A tsbox container from the API; its process tree starts at tsbox-init, the container's parent. */
async function api(argv, { rootfs, image, init, capture, network, allow }) {
  checkStopped();
  const root = image ? { image, pull: 'never' } : { rootfs };
  const c = await tsboxSpawn(argv, { ...root, init, stdio: capture ? ['ignore', 'ignore', 'pipe'] : 'ignore', ...(network ? { network } : {}), ...(allow ? { allow } : {}) });
  if (stopped) await c[Symbol.asyncDispose]();
  return watch(c, 'tsbox API', argv);
}

/**
 * A tsbox Container as a peer's start: `done` rejects unless it exited 0
 * (with its stderr, when captured); its process tree starts at tsbox-init,
 * the container's parent.
 */
function watch(c, label, argv) {
  live.add(c);
  let stderr = '';
  c.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
  const done = c.wait().then(
    (r) => {
      live.delete(c);
      if (r.exitCode !== 0) throw new Error(`${label}: ${argv.join(' ')} exited ${r.exitCode}${stderr ? `: ${stderr.trim()}` : ''}`);
    },
    (err) => {
      live.delete(c);
      throw err;
    },
  );
  const rootPid = () => Number(statusField(readFileSync(`/proc/${c.pid}/status`, 'utf8'), 'PPid'));
  return { rootPid, done };
}

/** The warm pool's peer: one pool for the run, made at its first start (the preflight). */
let pool = null;
/** Sandboxes the bench's pool keeps ready: enough for a burst's first round at concurrency 8. */
export const POOL_SIZE = 8;

/** A container from the warm pool (createPool): the same process tree as the API's. */
async function pooled(argv, { rootfs }) {
  checkStopped();
  pool ??= createPool({ rootfs, size: POOL_SIZE, stdio: 'pipe' });
  const c = await pool.spawn(argv);
  if (stopped) await c[Symbol.asyncDispose]();
  // The pool's stdio is piped: its output read (stderr by watch()), its stdin closed.
  c.stdout?.resume();
  c.stdin?.end();
  return watch(c, 'tsbox pool', argv);
}

/** The pool's counts at the end of the run, and its sandboxes destroyed. */
export async function closePeers() {
  if (!pool) return null;
  const stats = pool.stats();
  await pool.close();
  pool = null;
  return stats;
}

/**
 * The peers of one run. `kind`: 'container' peers start the isolated work;
 * 'baseline' ones are references (a plain exec, Node's own start-up, ...).
 * `start(work, { capture })` returns { rootPid(), done } (or a promise of it).
 * Peers that are a command also have `argv(work)`, and `openFd()` when the
 * command reads a descriptor 3 (bwrap's seccomp filter): the profile runs them
 * under strace and perf.
 */
export function definePeers(m, { crunHolderPid }) {
  const bundle = (work) => m.bundles[work];
  const nsenter = crunHolderPid ? ['nsenter', '-t', String(crunHolderPid), '-m', '--'] : [];
  const node = process.execPath;
  const command = (peer) => ({
    ...peer,
    start(work, o = {}) {
      // A fresh open file for each start: concurrent ones must not share an offset.
      const fd = peer.openFd?.();
      try {
        return exec(peer.argv(work), { ...o, extraFd: fd, env: peer.env, pipes: peer.pipes });
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    },
  });
  return [
    {
      name: 'tsbox-api',
      label: 'tsbox API',
      kind: 'container',
      start: (work, o = {}) => api(WORK[work], { rootfs: m.rootfs, init: true, ...o }),
    },
    {
      name: 'tsbox-api-noinit',
      label: 'tsbox API --no-init',
      kind: 'container',
      start: (work, o = {}) => api(WORK[work], { rootfs: m.rootfs, init: false, ...o }),
    },
    {
      // The same rootfs as an image in the store (prepare imports it), from
      // the API in this long-lived process: what an image's launch adds.
      name: 'tsbox-api-image',
      label: 'tsbox API, image',
      kind: 'container',
      start: (work, o = {}) => {
        process.env.TSBOX_STORAGE = m.store;
        return api(WORK[work], { image: m.image, init: true, ...o });
      },
    },
    {
      name: 'tsbox-pool',
      label: 'tsbox pool (warm)',
      kind: 'container',
      start: (work, o = {}) => pooled(WORK[work], { rootfs: m.rootfs, ...o }),
    },
    {
      // Opt-in (--peers): it changes the host as podman's bridge does
      // (the bridge tsbox0, net.ipv4.ip_forward on), which a bench run
      // should not do unasked.
      name: 'tsbox-api-bridge',
      label: 'tsbox API --network bridge',
      kind: 'container',
      optIn: true,
      start: (work, o = {}) => api(WORK[work], { rootfs: m.rootfs, init: true, network: 'bridge', ...o }),
    },
    {
      // Opt-in, as tsbox-api-bridge: and an egress allowlist (its resolver,
      // its chain and rules, the NFLOG reader of its reports). Needs
      // br_netfilter with net.bridge.bridge-nf-call-iptables = 1.
      name: 'tsbox-api-allow',
      label: 'tsbox API --network bridge --allow-host',
      kind: 'container',
      optIn: true,
      start: (work, o = {}) => api(WORK[work], { rootfs: m.rootfs, init: true, network: 'bridge', allow: ['example.test'], ...o }),
    },
    command({
      // Opt-in: podman's own bridge (its network backend's ADD and DEL),
      // with storage of the bench's own; it leaves podman's bridge and rules
      // on the host as podman always does. runc, since crun refuses a hybrid
      // host whose cgroup2 has a controller; podman's default nofile limit
      // is above the hard limit a bench may run under (as test/oci's).
      name: 'podman-bridge',
      label: 'podman run --network bridge',
      kind: 'container',
      optIn: true,
      argv: (work) => ['podman', '--root', join(m.dir, 'podman', 'root'), '--runroot', join(m.dir, 'podman', 'run'), '--storage-driver', 'vfs', '--runtime', 'runc', 'run', '--rm', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', '--network', 'bridge', '--rootfs', m.rootfs, ...WORK[work]],
    }),
    command({
      name: 'tsbox-cli',
      label: 'tsbox CLI',
      kind: 'container',
      argv: (work) => [node, TSBOX_CLI, 'run', '--rootfs', m.rootfs, '--', ...WORK[work]],
    }),
    // The same rootfs as an image in the store (prepare imports it): what an image costs over a directory.
    command({
      name: 'tsbox-cli-image',
      label: 'tsbox CLI, image',
      kind: 'container',
      env: { TSBOX_STORAGE: m.store },
      argv: (work) => [node, TSBOX_CLI, 'run', '--pull', 'never', m.image, ...WORK[work]],
    }),
    command({
      name: 'runc',
      label: 'runc run',
      kind: 'container',
      argv: (work) => ['runc', '--root', m.runcRoot, 'run', '--bundle', bundle(work), containerId('runc')],
    }),
    command({
      name: 'crun',
      label: crunHolderPid ? 'crun run (nsenter)' : 'crun run',
      kind: 'container',
      pipes: true,
      argv: (work) => [...nsenter, 'crun', '--root', m.crunRoot, 'run', '--bundle', bundle(work), containerId('crun')],
    }),
    command({
      name: 'bwrap',
      label: 'bwrap --unshare-all',
      kind: 'container',
      openFd: () => openSync(m.seccompBpf, 'r'),
      argv: (work) => ['bwrap', '--unshare-all', '--die-with-parent', '--new-session', '--ro-bind', m.rootfs, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--seccomp', '3', ...WORK[work]],
    }),
    command({
      name: 'srt',
      label: 'srt -c (sandbox-runtime)',
      kind: 'container',
      // Its own defaults: the host's root read-only, no network. It takes one
      // shell command. Not installed: the preflight leaves it out, saying why.
      argv: (work) => {
        if (!m.srt) throw new Error('srt is not installed: bench/setup.sh installs @anthropic-ai/sandbox-runtime into bench/.peers');
        return [m.srt, '-c', WORK[work].join(' ')];
      },
    }),
    command({
      name: 'unshare',
      label: 'unshare -UrpmnuifC',
      kind: 'container',
      argv: (work) => ['unshare', '-UrpmnuifC', '--kill-child', '--mount-proc', `--root=${m.rootfs}`, ...WORK[work]],
    }),
    command({
      name: 'plain',
      label: 'plain spawn',
      kind: 'baseline',
      argv: (work) => [join(m.rootfs, WORK[work][0]), ...WORK[work].slice(1)],
    }),
    command({ name: 'node', label: 'node -e 0', kind: 'baseline', only: 'true', argv: () => [node, '-e', '0'] }),
    command({ name: 'tsbox-version', label: 'tsbox --version', kind: 'baseline', only: 'true', argv: () => [node, TSBOX_CLI, '--version'] }),
    ...(crunHolderPid
      ? [command({ name: 'nsenter', label: 'nsenter (crun wrapper)', kind: 'baseline', only: 'true', argv: () => [...nsenter, join(m.rootfs, 'bin/true')] })]
      : []),
  ];
}

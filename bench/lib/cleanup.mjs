// Leaves the host as the bench found it: no process, container, cgroup, mount or
// file of the run. Safe to call more than once and after a failure anywhere.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { ID_PREFIX, live, stopAll } from './peers.mjs';

const quiet = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};

/** Directories of the run's cgroups (named after its container ids), deepest first. */
function runCgroups(root = '/sys/fs/cgroup', depth = 0, out = []) {
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const dir = join(root, e.name);
    if (depth < 5) runCgroups(dir, depth + 1, out);
    if (e.name.startsWith(ID_PREFIX)) out.push(dir);
  }
  return out;
}

function killCgroup(dir) {
  const procs = (() => {
    try {
      return readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  })();
  for (const pid of procs) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  try {
    writeFileSync(join(dir, 'cgroup.kill'), '1');
  } catch {
    // v1, or nothing to kill.
  }
}

/**
 * The host's device nodes a peer is given or binds (/dev/null as stdio, the
 * default devices in a container), as the bench found them: a runtime that
 * chowns its stdio or its devices reaches the host's own nodes (crun 1.8
 * did, with /dev/null as stdio; it gets pipes now, peers.mjs peerStdio).
 */
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((d) => `/dev/${d}`);
const devicesFound = new Map();
for (const path of DEVICES) {
  try {
    const st = statSync(path);
    devicesFound.set(path, { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 });
  } catch {
    // Not on this host.
  }
}

/** Puts back any device node whose owner or mode changed during the run; says which. */
function restoreDevices() {
  const changed = [];
  for (const [path, was] of devicesFound) {
    try {
      const st = statSync(path);
      if (st.uid === was.uid && st.gid === was.gid && (st.mode & 0o7777) === was.mode) continue;
      changed.push(`${path} (${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)})`);
      chownSync(path, was.uid, was.gid);
      chmodSync(path, was.mode);
    } catch {
      // Gone meanwhile: nothing to put back.
    }
  }
  return changed;
}

export async function cleanup({ manifest, crunHolder, stateDir, log }) {
  stopAll();
  const leftovers = [];
  for (const item of live) {
    leftovers.push('process');
    if (typeof item[Symbol.asyncDispose] === 'function') await item[Symbol.asyncDispose]().catch(() => {});
    else item.kill('SIGKILL');
  }
  live.clear();
  if (manifest) {
    for (const id of quiet('runc', ['--root', manifest.runcRoot, 'list', '-q']).split('\n').filter(Boolean)) {
      leftovers.push(`runc container ${id}`);
      quiet('runc', ['--root', manifest.runcRoot, 'delete', '--force', id]);
    }
    const crun = crunHolder ? ['nsenter', '-t', String(crunHolder.pid), '-m', '--', 'crun'] : ['crun'];
    for (const id of quiet(crun[0], [...crun.slice(1), '--root', manifest.crunRoot, 'list', '-q']).split('\n').filter(Boolean)) {
      leftovers.push(`crun container ${id}`);
      quiet(crun[0], [...crun.slice(1), '--root', manifest.crunRoot, 'delete', '--force', id]);
    }
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const dirs = runCgroups();
    if (dirs.length === 0) break;
    for (const dir of dirs) {
      if (attempt === 0) leftovers.push(`cgroup ${dir}`);
      killCgroup(dir);
      try {
        rmdirSync(dir);
      } catch {
        // Busy until its processes are reaped; retried.
      }
    }
    await sleep(50);
  }
  const stuck = runCgroups();
  if (crunHolder && crunHolder.exitCode === null && crunHolder.signalCode === null) {
    // The mount that masks cgroup.controllers lives only in its namespace: it goes with it.
    const gone = new Promise((resolve) => crunHolder.once('exit', resolve));
    crunHolder.kill('SIGKILL');
    await gone;
  }
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  if (leftovers.length > 0) log(`bench: cleaned up after an interrupted run: ${leftovers.join(', ')}`);
  if (stuck.length > 0) log(`bench: could not remove cgroups: ${stuck.join(', ')}`);
  const devices = restoreDevices();
  if (devices.length > 0) log(`bench: a peer changed the host's ${devices.join(', ')}: put back as the bench found them`);
}

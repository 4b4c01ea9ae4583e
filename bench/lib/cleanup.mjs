// Leaves the host as the bench found it: no process, container, cgroup, mount or
// file of the run. Safe to call more than once and after a failure anywhere.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
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
}

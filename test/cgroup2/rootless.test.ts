/**
 * An ordinary user on pure cgroup v2 (issue 20), inside the test VM: a
 * cgroup delegated to the user the way systemd delegates user@UID.service
 * (owned by the user: its directory, cgroup.procs, cgroup.subtree_control
 * and cgroup.threads; the controllers enabled in its root-owned parent),
 * the user's shell started inside it, and tsbox run from that shell with
 * nothing telling it where the cgroup is.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { DEFAULT_PIDS_LIMIT } from '../../ts/cgroups/index.js';
import { buildTestRootfs, type TestRootfs } from '../support/rootfs.js';
import { BIN } from '../support/tsbox.js';

const CG = '/sys/fs/cgroup';
const USER = `tsbox-deleg-${process.pid}`;
let uid = 0;
let rootfs: TestRootfs;
let serial = 0;
/** The root-owned parent (controllers enabled for its child) and the delegated cgroup, fresh for each test. */
let parent = '';
let delegated = '';

beforeAll(async () => {
  rootfs = await buildTestRootfs();
  execFileSync('useradd', ['-M', '-s', '/bin/sh', USER]);
  uid = Number(execFileSync('id', ['-u', USER]).toString().trim());
}, 120_000);
afterAll(async () => {
  execFileSync('userdel', [USER]);
  await rootfs?.cleanup();
});

beforeEach(() => {
  parent = join(CG, `tsbox-deleg-test-${process.pid}-${++serial}`);
  delegated = join(parent, 'user');
  mkdirSync(parent);
  // cpuset and io are not delegated: a limit on them is the user's error.
  for (const c of ['cpu', 'memory', 'pids']) writeFileSync(join(parent, 'cgroup.subtree_control'), `+${c}`);
  mkdirSync(delegated);
  for (const p of [delegated, ...['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'].map((f) => join(delegated, f))]) chownSync(p, uid, uid);
});

afterEach(() => {
  // Whatever the test left is removed leaves first; the test itself asserts what it left.
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    rmdirSync(dir);
  };
  if (existsSync(parent)) walk(parent);
});

/**
 * `script` run by the user's shell, started inside the delegated cgroup
 * (placed there by root before it runs anything), with `$TSBOX` the CLI.
 */
function inShell(script: string, where = () => delegated, runtimeDir = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_RUNTIME_DIR: runtimeDir, TSBOX: `${process.execPath} ${BIN}` };
  const child = spawn('/bin/sh', ['-c', `read _; ${script}`], { uid, gid: uid, env, cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  writeFileSync(join(where(), 'cgroup.procs'), String(child.pid));
  child.stdin.end('go\n');
  return done;
}

const run = (args: string) => `$TSBOX run --rootfs ${rootfs.dir} ${args}`;

/** The cgroups below the delegated one, relative to it. */
function below(dir = delegated): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      out.push(join(d, e.name).slice(dir.length + 1));
      walk(join(d, e.name));
    }
  };
  walk(dir);
  return out.sort();
}

describe('an ordinary user in a delegated cgroup v2 subtree', () => {
  it('gets its limits there: -m 64m OOM-kills past 64 MiB; the shell moved to a leaf; nothing of the container is left', async () => {
    const r = await inShell(`${run('-m 64m --report - -- tsbox-probe alloc 200')}; echo "rc=$?"; cat /proc/$$/cgroup`);
    const at = r.stderr.lastIndexOf('\n{');
    const report = JSON.parse(r.stderr.slice(at < 0 ? r.stderr.indexOf('{') : at + 1)) as { exitCode: number; oomKilled: boolean; limits: { memory: number } };
    expect(report.oomKilled, r.stderr).toBe(true);
    expect(report.limits.memory).toBe(64 * 1024 * 1024);
    expect(r.stdout).toContain('rc=137');
    // The shell (and tsbox) left the delegated cgroup for its leaf, so that
    // controllers could be enabled there.
    expect(r.stdout).toContain(`0::${delegated.slice(CG.length)}/tsbox-leaf`);
    expect(readFileSync(join(delegated, 'cgroup.procs'), 'utf8')).toBe('');
    expect(readFileSync(join(delegated, 'cgroup.subtree_control'), 'utf8').trim().split(' ').sort()).toEqual(['cpu', 'memory', 'pids']);
    // The container's cgroup is gone; the shared parent stays until gc, which the user runs.
    expect(below()).toEqual(['tsbox', 'tsbox-leaf']);
    const gc = await inShell('$TSBOX gc', () => join(delegated, 'tsbox-leaf'));
    expect(gc.code, gc.stderr).toBe(0);
    expect(below()).toEqual(['tsbox-leaf']);
  });

  it('--pids-limit 16 bounds a fork loop, and without it the default pids limit is in force', async () => {
    const bounded = await inShell(run("--pids-limit 16 -- sh -c 'for i in $(seq 40); do sleep 5 & done; wait'"));
    expect(bounded.stdout + bounded.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    const dflt = await inShell(run('-- cat /sys/fs/cgroup/pids.max'), () => join(delegated, 'tsbox-leaf'));
    expect(dflt.code, dflt.stderr).toBe(0);
    expect(dflt.stdout.trim()).toBe(String(DEFAULT_PIDS_LIMIT));
    expect(dflt.stderr).not.toContain('no cgroup');
  });

  it('--cpus 0.5 shows in cpu.max', async () => {
    const r = await inShell(run('--cpus 0.5 -- cat /sys/fs/cgroup/cpu.max'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('50000 100000');
  });

  it('a limit on a controller that is not delegated: a clear error naming it and how to delegate it; nothing made', async () => {
    const r = await inShell(run('--cpuset-cpus 0 -- true'));
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('the cpuset controller is not available in');
    expect(r.stderr).toContain('have it delegated to your user (systemd: `systemctl edit user@.service` with [Service] Delegate=cpu cpuset io memory pids, then log in again)');
    expect(below()).toEqual([]);
  });

  it('outside any delegated cgroup: the container runs without one, and the note says which cgroups were tried and why', async () => {
    // The shell stays in the test runner's own cgroup, root's.
    const own = readFileSync('/proc/self/cgroup', 'utf8').trim().replace(/^0::/, '');
    const tried = `no cgroup here is delegated to uid ${uid}: ${own.slice(0, own.lastIndexOf('/'))} (the parent of this process's cgroup): its directory is not writable (no child cgroups); ${own} (this process's own cgroup): its directory is not writable`;
    // Without a user session, the note says that is what is missing.
    const bare = await inShell(run('-- true'), () => join(CG, own));
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stderr).toContain(tried);
    expect(bare.stderr).toContain('you have no systemd user session here');
    // With one, it names the systemd-run line that gives a delegated cgroup.
    const runtimeDir = mkdtempSync(join(tmpdir(), 'tsbox-deleg-xdg-'));
    try {
      chownSync(runtimeDir, uid, uid);
      const session = await inShell(run('-- true'), () => join(CG, own), runtimeDir);
      expect(session.code, session.stderr).toBe(0);
      expect(session.stderr).toContain(tried);
      expect(session.stderr).toContain('to get limits, run tsbox in a cgroup delegated to you: `systemd-run --user --scope -p Delegate=yes tsbox ...`');
    } finally {
      rmSync(runtimeDir, { recursive: true, force: true });
    }
  });
});

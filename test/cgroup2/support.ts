/**
 * Helpers for the cgroup suites that run real workloads without containers:
 * test/integration/cgroups.test.ts (this hybrid host) and
 * test/cgroup2/cgroups.test.ts (pure v2, in the VM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Gated {
  child: ChildProcess;
  pid: number;
  /** Lets the script run past its first line (`read _`). */
  go(): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/**
 * Starts `sh -c 'read _; SCRIPT'`: the shell waits on stdin, so the test can
 * place it in a cgroup before the script forks or allocates anything (on v1 a
 * moved process's earlier memory stays charged where it was).
 */
export function spawnGated(script: string): Gated {
  const child = spawn('/bin/sh', ['-c', `read _; ${script}`], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  if (child.pid === undefined) throw new Error('could not start /bin/sh');
  return { child, pid: child.pid, go: () => child.stdin!.end('go\n'), exited, stderr: () => err };
}

export function killQuietly(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** A container id for a test cgroup: `tsboxtest-` and 16 hex digits. */
export function newId(): string {
  return `tsboxtest-${randomBytes(8).toString('hex')}`;
}

/** Mount points of every cgroup hierarchy (v1 and v2) this process sees. */
export function cgroupMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(' ')[4]!);
}

/** Every directory in every cgroup hierarchy whose name passes `match`. */
export function findCgroupDirs(match: (name: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (match(e.name)) out.push(p);
      walk(p);
    }
  };
  for (const m of cgroupMounts()) walk(m);
  return out;
}

/** The shared `tsbox` parents in every hierarchy: they stay once made, and gc removes the empty ones. */
export const tsboxParents = (): string[] => findCgroupDirs((n) => n === 'tsbox');

/** Containers' cgroups in every hierarchy: each one under a `tsbox` parent, and test ones anywhere. */
export const tsboxDirs = (): string[] => {
  const containers = tsboxParents().flatMap((d) => {
    try {
      return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
    } catch {
      return [];
    }
  });
  return [...new Set([...containers, ...findCgroupDirs((n) => n.startsWith('tsboxtest-'))])].sort();
};

/** The cgroup of `pid` per hierarchy, as /proc/PID/cgroup lines. */
export function procCgroup(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
}

export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

export const MiB = 1024 * 1024;

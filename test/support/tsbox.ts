/** Runs the tsbox CLI (the built bin/tsbox.js) and the API for the integration suites. */
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll } from 'vitest';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = `${REPO}bin/tsbox.js`;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  input?: string;
  /** Leave stdin open (the test writes to it through onSpawn). */
  keepStdinOpen?: boolean;
  uid?: number;
  gid?: number;
  env?: NodeJS.ProcessEnv;
  /** Called once the process exists, e.g. to signal it. */
  onSpawn?: (child: ChildProcess) => void;
  /** Kill (SIGKILL) after this many ms so a broken test cannot hang the suite. */
  killAfterMs?: number;
  /** The working directory (an OCI bundle's, for `tsbox run ID`). */
  cwd?: string;
}

export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runCommand(process.execPath, [BIN, ...args], opts);
}

/** Any program, as cli() runs tsbox: its output, status and signal; killed after killAfterMs (20 s). */
export function runCommand(file: string, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnProcess(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (!opts.keepStdinOpen) child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    opts.onSpawn?.(child);
  });
}

/** All of a stream's text, once it has ended. */
export function text(stream: NodeJS.ReadableStream | null): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    stream!.on('data', (d: Buffer) => (out += d.toString()));
    stream!.on('end', () => resolve(out));
    stream!.on('error', reject);
  });
}

/** Resolves once `child` has printed `text` on stdout. */
export function waitForOutput(child: ChildProcess, text: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(text)}; saw ${JSON.stringify(seen)}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer | string) => {
      seen += d.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * Every descendant of `pid`, by /proc/PID/task/TID/children of each of its
 * threads: a child is listed under the thread that made it (tsbox's helpers
 * under the addon's spawning thread, not under Node's main thread).
 */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let children: string[] = [];
      try {
        children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      } catch {
        continue;
      }
      for (const c of children) {
        out.push(Number(c));
        walk(Number(c));
      }
    }
  };
  walk(pid);
  return out;
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie is dead for our purposes: it only waits to be reaped.
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

export async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** The probe's `info` report (crates/tsbox-probe). */
export interface ProbeInfo {
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  uidMap: [number, number, number][];
  gidMap: [number, number, number][];
  setgroups: string;
  hostname: string;
  ns: Record<'user' | 'pid' | 'mnt' | 'net' | 'ipc' | 'uts' | 'cgroup', number | null>;
  status: { CapInh: string; CapPrm: string; CapEff: string; CapBnd: string; CapAmb: string; NoNewPrivs: number; Seccomp: number };
  mounts: { mountPoint: string; fsType: string; source: string; options: string }[];
  cgroup: string[];
  cwd: string;
  interfaces: string[];
  interfacesUp: string[];
  env: Record<string, string>;
  errors: unknown[];
}

/**
 * A scratch directory for one test file, removed after its tests. 0755: the
 * containers of the ordinary users some tests create read what is in it.
 */
export function scratchDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tsbox-test-${label}-`));
  chmodSync(dir, 0o755);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * tsbox as podman's OCI runtime (issue 15): `podman --runtime tsbox`, with
 * conmon driving create, start, state, kill and delete, and exec, as it
 * drives runc. Debian's podman and conmon (installed by .ci/run), storage
 * and run directories of the test's own, and the test rootfs as
 * `--rootfs`: no image and no registry.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { BIN, cli } from '../support/tsbox.js';

const rootfs = inject('rootfs');
let dir = '';

beforeAll(() => {
  for (const tool of ['podman', 'conmon']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is not installed: .ci/run installs podman and conmon (apt-get install podman conmon)`);
    }
  }
  dir = mkdtempSync(join(tmpdir(), 'tsbox-podman-'));
});

afterAll(async () => {
  if (!dir) return;
  await podman(['rm', '--all', '--force', '--time', '0']);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * podman with tsbox as its runtime, its storage in the test's directory, the
 * cgroupfs manager (no systemd here), and no network. This machine's root
 * lacks CAP_SYS_RESOURCE, so podman's default nofile and nproc limits (which
 * raise the hard limits) are lowered for every container.
 */
function podman(args: string[], input?: string, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const global = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--runtime', BIN];
  return new Promise((resolve) => {
    const child = spawn('podman', [...global, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    child.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const RUN = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

describe('podman --runtime tsbox', () => {
  it('runs a container in the foreground: its output, its exit status, its hostname and its own pid namespace', async () => {
    const r = await podman(['run', '--rm', ...RUN, '--hostname', 'podded', '--rootfs', rootfs, 'sh', '-c', 'echo "hello from $(hostname)"; echo "pid $$"; exit 7']);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stdout).toBe('hello from podded\npid 1\n');
  });

  it('a detached container: ps, logs, exec (output, exit status, stdin, tty), stop with its signal, rm; nothing of it is left', async () => {
    const name = `tsbox-podman-${process.pid}`;
    const started = await podman(['run', '-d', ...RUN, '--name', name, '--rootfs', rootfs, 'sh', '-c', 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await podman(['ps', '--format', '{{.Names}}'])).stdout.split('\n')).toContain(name);
    expect((await podman(['inspect', '--format', '{{.State.Status}}', name])).stdout.trim()).toBe('running');
    // tsbox lists it too, under podman's id, with its bundle.
    const listed = await cli(['list', '--format', 'json']);
    expect((JSON.parse(listed.stdout) as { id: string; status: string }[]).find((c) => c.id === id)).toMatchObject({ status: 'running' });
    // exec: its output, its exit status (conmon's exec session waits for the
    // process: it descends from tsbox exec), its stdin, and a terminal.
    const exec = await podman(['exec', name, 'sh', '-c', 'echo "in $(hostname)"; exit 5']);
    expect(exec).toMatchObject({ code: 5, stdout: `in ${id.slice(0, 12)}\n` });
    expect(await podman(['exec', '-i', name, 'cat'], 'piped\n')).toMatchObject({ code: 0, stdout: 'piped\n' });
    const tty = await podman(['exec', '-t', name, 'sh', '-c', 'tty; exit 3']);
    expect(tty.code, tty.stderr).toBe(3);
    expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    const stop = await podman(['stop', '--time', '10', name]);
    expect(stop.code, stop.stderr).toBe(0);
    const inspect = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]);
    expect(inspect.stdout.trim()).toBe('exited 0');
    expect((await podman(['logs', name])).stdout).toBe('started\nbye\n');
    expect((await podman(['rm', name])).code).toBe(0);
    expect((await cli(['state', id])).code).not.toBe(0);
    expect(readdirSync(join(dir, 'run', 'overlay-containers')).filter((d) => d.startsWith(id))).toEqual([]);
  });

  it('kill sends its signal to PID 1; a memory limit is the container\'s cgroup\'s and OOM-kills past it', async () => {
    const name = `tsbox-podman-kill-${process.pid}`;
    expect((await podman(['run', '-d', ...RUN, '--name', name, '--rootfs', rootfs, 'sleep', '100'])).code).toBe(0);
    expect((await podman(['kill', '--signal', 'KILL', name])).code).toBe(0);
    expect((await podman(['wait', name])).stdout.trim()).toBe('137');
    expect((await podman(['rm', name])).code).toBe(0);
    const oom = await podman(['run', '--rm', ...RUN, '--memory', '64m', '--memory-swap', '64m', '--rootfs', rootfs, 'tsbox-probe', 'alloc', '200']);
    expect(oom.code).toBe(137);
    expect(existsSync(join(dir, 'storage'))).toBe(true);
  });
});

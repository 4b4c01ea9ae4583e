/**
 * Regression tests for what a hostile review found about the processes
 * tsbox makes in a container before they exec (the container's first
 * process, and each one `exec` starts): while they are still tsbox-init's
 * copies, with the host's ids, root, working directory and descriptors,
 * nothing of the container may reach those. Each test fails on the code
 * before its fix.
 */
import { spawn as spawnProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { run, spawn, TsboxError } from '../../ts/index.js';
import { BIN, cli, scratchDir, text } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('exec-escapes');

const ENOENT = 2;
const ENOTDIR = 20;
const EINVAL = 22;
/** The descriptors a working directory of /proc/self/fd/N is tried with. */
const FDS = Array.from({ length: 18 }, (_, i) => i + 3);

/** A copy of the test rootfs with `extra` done to it. */
async function rootfsWith(name: string, extra: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(scratch, name);
  await fs.cp(rootfs, dir, { recursive: true, verbatimSymlinks: true });
  await extra(dir);
  return dir;
}

/** What starting a process did: the errno of its failure, or `ok` with its output. */
async function outcome(start: () => Promise<string>): Promise<number | string> {
  try {
    return `ok: ${await start()}`;
  } catch (e) {
    if (!(e instanceof TsboxError)) throw e;
    expect(e.step, e.message).toBe('chdir');
    return e.errno;
  }
}

/**
 * A working directory of /fdN, a symlink to /proc/self/fd/N, enters
 * whatever descriptor N the process holds at its chdir (the /proc/ check
 * does not see through a symlink). Closed: ENOENT. A socket or file:
 * ENOTDIR. A directory: entered. Only the process's own channel to the
 * monitor (a socket) may be there; a host directory (the v2 cgroup's) would
 * be entered, and `..` from it walks the host.
 */
function expectNoHostDescriptors(outcomes: (number | string)[]): void {
  expect(outcomes.filter((o) => typeof o === 'string'), 'a process that entered a descriptor as its working directory').toEqual([]);
  expect(outcomes.filter((o) => o !== ENOENT && o !== ENOTDIR)).toEqual([]);
  expect(outcomes.filter((o) => o === ENOTDIR).length, `descriptors open at chdir: ${JSON.stringify(FDS.filter((_, i) => outcomes[i] === ENOTDIR))}`).toBeLessThanOrEqual(1);
}

describe("a process exec'd into a container is never dumpable before it drops the host's state", () => {
  it('a container with CAP_SYS_PTRACE watching /proc/*/root through several execs never sees the host root', async () => {
    const marker = join(scratch, 'host-only-marker');
    await fs.writeFile(marker, '');
    // Every process the container can see, over and over, with shell
    // builtins only (a pass takes far less than an exec's wait to be placed
    // in its cgroups): a HIT is one whose root holds the host's marker,
    // i.e. is the host's /. Before the fix each exec gave hundreds.
    const watch = [
      'grep CapEff: /proc/self/status',
      'i=0',
      `while :; do for p in /proc/[0-9]*; do [ -e "$p/root${marker}" ] && echo "HIT $p"; done; i=$((i+1)); [ $i = 100 ] && { echo pass; i=0; }; done`,
    ].join('\n');
    await using c = await spawn(['sh', '-c', watch], { rootfs, capAdd: ['SYS_PTRACE'] });
    let out = '';
    let passes = 0;
    let notify: (() => void) | undefined;
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      passes = out.split('\n').filter((l) => l === 'pass').length;
      notify?.();
    });
    const nextPass = async () => {
      const seen = passes;
      while (passes <= seen) await new Promise<void>((r) => (notify = r));
    };
    await nextPass();
    // The watcher has CAP_SYS_PTRACE (bit 19), the reviewer's condition.
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(out)![1]}`);
    expect(capEff & (1n << 19n)).toBe(1n << 19n);
    for (let i = 0; i < 8; i++) {
      const e = await c.exec(['true']);
      await expect(e.wait()).resolves.toMatchObject({ exitCode: 0 });
    }
    // Everything the watcher printed during the execs has arrived.
    await nextPass();
    expect(new Set(out.split('\n').filter((l) => l.startsWith('HIT')))).toEqual(new Set());
  });
});

describe('no descriptor of the host is open when a process enters its working directory (CVE-2024-21626)', () => {
  it('run: a working directory /proc/self/fd/N is refused, with the reason', async () => {
    for (const n of FDS) {
      const err = await run(['pwd'], { rootfs, cwd: `/proc/self/fd/${n}` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TsboxError);
      expect(err).toMatchObject({ step: 'chdir', errno: EINVAL, path: `/proc/self/fd/${n}` });
      expect((err as TsboxError).message).toMatch(/a working directory under \/proc\/ is refused/);
    }
  });

  it("run: through a symlink in the image, /proc/self/fd/N finds none of the helper's descriptors", async () => {
    const links = await rootfsWith('fd-links', async (dir) => {
      for (const n of FDS) await fs.symlink(`/proc/self/fd/${n}`, join(dir, `fd${n}`));
    });
    const outcomes: (number | string)[] = [];
    for (const n of FDS) outcomes.push(await outcome(async () => (await run(['sh', '-c', 'pwd -P; ls ..'], { rootfs: links, cwd: `/fd${n}` })).stdout));
    expectNoHostDescriptors(outcomes);
  });

  describe('exec', () => {
    const links = FDS.map((n) => `ln -s /proc/self/fd/${n} /fd${n}`).join('; ');
    const container = async () => {
      const c = await spawn(['sh', '-c', `${links}; echo ready; sleep 60`], { rootfs });
      await new Promise<void>((r) => c.stdout!.once('data', () => r()));
      return c;
    };

    it('a working directory /proc/self/fd/N is refused, with the reason', async () => {
      await using c = await container();
      for (const n of FDS) {
        const err = await c.exec(['pwd'], { cwd: `/proc/self/fd/${n}` }).catch((e: unknown) => e);
        expect(err).toMatchObject({ step: 'chdir', errno: EINVAL, path: `/proc/self/fd/${n}` });
        expect((err as TsboxError).message).toMatch(/a working directory under \/proc\/ is refused/);
      }
    });

    it("through a symlink the container made, /proc/self/fd/N finds none of the monitor's descriptors", async () => {
      await using c = await container();
      const outcomes: (number | string)[] = [];
      for (const n of FDS) {
        outcomes.push(
          await outcome(async () => {
            const e = await c.exec(['sh', '-c', 'pwd -P; ls ..'], { cwd: `/fd${n}` });
            const out = text(e.stdout);
            await e.wait();
            return out;
          }),
        );
      }
      expectNoHostDescriptors(outcomes);
    });
  });

  it('a working directory that resolves outside the root (a host directory given as stdin, through /proc/self/fd/0) is refused', async () => {
    // The container points /w0 at its stdin; the operator's exec happens to
    // read from a directory. Entered, `..` would list the host's.
    await fs.writeFile(join(scratch, 'host-only-listing'), '');
    const r = await cli(['run', '-d', '--rootfs', rootfs, '--', 'sh', '-c', 'ln -s /proc/self/fd/0 /w0; sleep 60']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    try {
      expect((await cli(['exec', id, 'sh', '-c', 'while [ ! -L /w0 ]; do sleep 0.05; done'])).code).toBe(0);
      const dir = openSync(scratch, 'r');
      const exec = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawnProcess(process.execPath, [BIN, 'exec', '-w', '/w0', id, 'sh', '-c', 'ls; ls ..'], { stdio: [dir, 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      }).finally(() => closeSync(dir));
      expect(exec.stdout).not.toMatch(/host-only-listing/);
      expect(exec.code).toBe(125);
      expect(exec.stderr).toMatch(/^tsbox: chdir\(\/w0\): ENOENT — enter the working directory: it is not inside the container's root/);
    } finally {
      await cli(['rm', '-f', id]);
    }
  });
});

describe('a command that has exec\'d is started, whatever it is named', () => {
  // The container chooses its commands' names; `tsbox-init` (tsbox's own
  // before the exec) was taken for a process that died during its setup:
  // a start failure, reported only once the command had ended.
  it('a command named tsbox-init, as PID 1, under the init, and exec\'d', async () => {
    const named = await rootfsWith('named-tsbox-init', async (dir) => {
      await fs.writeFile(join(dir, 'bin/tsbox-init'), '#!/bin/sh\nsleep 1\necho done\n', { mode: 0o755 });
    });
    for (const init of [true, false]) {
      await expect(run(['tsbox-init'], { rootfs: named, init })).resolves.toMatchObject({ exitCode: 0, stdout: 'done\n' });
    }
    await using c = await spawn(['sleep', '30'], { rootfs: named });
    const e = await c.exec(['tsbox-init']);
    const out = text(e.stdout);
    await expect(e.wait()).resolves.toMatchObject({ exitCode: 0 });
    expect(await out).toBe('done\n');
  });
});

/**
 * Containers on pure cgroup v2 (issue 6), inside the test VM: clone3 places
 * the child with CLONE_INTO_CGROUP, limits act and are visible at
 * /sys/fs/cgroup inside, the report reads memory.peak and memory.events, and
 * cgroup.kill leaves nothing behind.
 */
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildTestRootfs, type TestRootfs } from '../support/rootfs.js';
import { cli } from '../support/tsbox.js';
import { createPool } from '../../ts/index.js';
import { locateNative } from '../../ts/native.js';
import { tsboxDirs } from './support.js';

let rootfs: TestRootfs;
beforeAll(async () => {
  rootfs = await buildTestRootfs();
}, 120_000);
afterAll(async () => {
  await rootfs?.cleanup();
});

async function report(args: string[], command: string[]) {
  const r = await cli(['run', '--rootfs', rootfs.dir, '--report', '-', ...args, '--', ...command], { killAfterMs: 110_000 });
  const at = r.stderr.lastIndexOf('\n{');
  const json = r.stderr.slice(at < 0 ? r.stderr.indexOf('{') : at + 1);
  return { ...r, report: JSON.parse(json) as { exitCode: number; oomKilled: boolean; usage: { peakMemoryBytes: number | null; cpuThrottledPeriods: number | null }; limits: Record<string, unknown> } };
}

describe('containers on cgroup v2', () => {
  it('clones straight into the cgroup, which is / inside, with the limits visible', async () => {
    const r = await cli(['run', '--rootfs', rootfs.dir, '--trace', '-m', '64m', '--pids-limit', '33', '--cpus', '0.5', '--', 'sh', '-c', 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max'], { killAfterMs: 110_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('into its cgroup (CLONE_INTO_CGROUP)');
    expect(r.stdout.trim().split('\n')).toEqual(['0::/', String(64 * 1024 * 1024), '33', '50000 100000']);
  });

  it('--cgroup-conf writes v2 files in the container\'s cgroup (their controller enabled); v1-only memory flags are refused, naming why', async () => {
    const r = await cli(['run', '--rootfs', rootfs.dir, '--cgroup-conf', 'memory.high=33554432', '--cgroup-conf', 'cgroup.max.descendants=2', '--', 'sh', '-c', 'cat /sys/fs/cgroup/memory.high /sys/fs/cgroup/cgroup.max.descendants'], { killAfterMs: 110_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['33554432', '2']);
    const refused = await cli(['run', '--rootfs', rootfs.dir, '--memory-swappiness', '10', '--', 'true'], { killAfterMs: 110_000 });
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain('limits.memorySwappiness');
    expect(refused.stderr).toContain('cgroup v2 has no memory.swappiness');
  });

  it('a memory limit OOM-kills an allocator and the report says oomKilled', async () => {
    const { report: r } = await report(['-m', '48m'], ['tsbox-probe', 'alloc', '200']);
    expect(r.oomKilled).toBe(true);
    expect(r.exitCode).toBe(137);
  });

  it('reports memory.peak within 10% of the allocation', async () => {
    const { report: r } = await report([], ['tsbox-probe', 'alloc', '100']);
    const mib = 1024 * 1024;
    expect(r.usage.peakMemoryBytes!).toBeGreaterThanOrEqual(100 * mib);
    expect(r.usage.peakMemoryBytes!).toBeLessThanOrEqual(110 * mib);
  });

  it('a pids limit stops a fork loop', async () => {
    const r = await cli(['run', '--rootfs', rootfs.dir, '--pids-limit', '10', '--', 'sh', '-c', 'for i in $(seq 30); do sleep 1 & done; wait'], { killAfterMs: 110_000 });
    expect(r.stdout + r.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
  });

  it('a cpu quota shows up as throttling in cpu.stat', async () => {
    const { report: r } = await report(['--cpus', '0.1'], ['sh', '-c', 'end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done']);
    expect(r.usage.cpuThrottledPeriods!).toBeGreaterThan(0);
  });

  it('a warm pool on pure v2: each sandbox cloned into its own cgroup with the pool\'s limits, a call\'s tighter limit written before its process, nothing left after close()', async () => {
    await using pool = createPool({ rootfs: rootfs.dir, size: 2, memory: '128m', pidsLimit: 50 });
    for (let i = 0; i < 1200 && pool.stats().ready < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(pool.stats().ready).toBe(2);
    const read = ['sh', '-c', 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max'];
    const plain = await pool.run(read);
    expect(plain.stdout.trim().split('\n'), plain.stderr).toEqual(['0::/', String(128 * 1024 * 1024), '50']);
    const tight = await pool.run(read, { memory: '64m', pidsLimit: 20 });
    expect(tight.stdout.trim().split('\n')).toEqual(['0::/', String(64 * 1024 * 1024), '20']);
    expect(tight.limits).toMatchObject({ memory: 64 * 1024 * 1024, pidsLimit: 20 });
    expect(tight.id).not.toBe(plain.id);
    const oom = await pool.run(['tsbox-probe', 'alloc', '200'], { memory: '48m' });
    expect(oom.oomKilled).toBe(true);
    await pool.close();
    const left = tsboxDirs().flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}`));
    expect(left).toEqual([]);
  });

  it('a tsbox-init that cannot be started: 125, naming it, and the cgroup made before the spawn failed is gone', async () => {
    // On v2 the container's cgroup exists before the plan goes out, which is
    // when the launch learns that the spawn (on the addon's thread) failed.
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-test-badinit-'));
    const { addonPath } = locateNative();
    copyFileSync(addonPath, join(dir, basename(addonPath)));
    writeFileSync(join(dir, 'tsbox-init'), 'not a program\n', { mode: 0o755 });
    const containers = () => readdirSync('/run/tsbox').filter((n) => /^[0-9a-f]{64}$/.test(n));
    try {
      const r = await cli(['run', '--rootfs', rootfs.dir, '-m', '64m', '--', 'true'], { env: { ...process.env, TSBOX_NATIVE_DIR: dir }, killAfterMs: 110_000 });
      expect(r.code).toBe(125);
      const init = join(dir, 'tsbox-init');
      expect(r.stderr).toBe(`tsbox: spawn_helper(${init}): start ${init}: Exec format error (ENOEXEC); reinstall tsbox, or point TSBOX_NATIVE_DIR at a build holding tsbox-init\n`);
      const left = tsboxDirs().flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}`));
      expect(left).toEqual([]);
      expect(containers()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves no container cgroup behind', () => {
    const left = tsboxDirs().flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}`));
    expect(left).toEqual([]);
  });
});

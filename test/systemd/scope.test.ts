/**
 * runc's --systemd-cgroup, where systemd is PID 1 (the test VM booted with
 * systemd): the container's cgroup is a transient scope systemd made from
 * cgroupsPath `slice:prefix:name`, which systemctl knows, with its limits as
 * the unit's properties as well as in its files, nothing of tsbox's in it,
 * and gone with the container.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runtimeToolsConfig } from '../support/oci.js';
import { buildTestRootfs, type TestRootfs } from '../support/rootfs.js';
import { BIN, cli } from '../support/tsbox.js';

let rootfs: TestRootfs;
let scratch: string;
beforeAll(async () => {
  rootfs = await buildTestRootfs();
  scratch = mkdtempSync(join(tmpdir(), 'tsbox-vm-systemd-'));
}, 120_000);
afterAll(async () => {
  await rootfs?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

const slow = { killAfterMs: 110_000 };
const MiB = 1024 * 1024;

/** `tsbox --systemd-cgroup create` with its stdio in files (the container keeps them). */
function create(dir: string, id: string): Promise<number | null> {
  const fds = [openSync(join(dir, 'out'), 'w'), openSync(join(dir, 'err'), 'w')];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--systemd-cgroup', 'create', '--bundle', dir, id], { stdio: ['ignore', fds[0]!, fds[1]!] });
    for (const fd of fds) closeSync(fd);
    child.on('exit', resolve);
  });
}

const show = (unit: string, prop: string): string => execFileSync('systemctl', ['show', unit, '-p', prop, '--value'], { encoding: 'utf8' }).trim();
const pidOf = async (id: string): Promise<number> => (JSON.parse((await cli(['state', id], slow)).stdout) as { pid: number }).pid;

function bundle(name: string, cgroupsPath: string | undefined): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  const config = runtimeToolsConfig(rootfs.dir, ['sleep', '60']);
  if (cgroupsPath === undefined) delete config.linux.cgroupsPath;
  else config.linux.cgroupsPath = cgroupsPath;
  config.linux.resources = { memory: { limit: 64 * MiB }, pids: { limit: 40 } };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('--systemd-cgroup', () => {
  it("puts the container in a scope systemd made: systemctl knows it, its limits are the unit's and the cgroup's (a daemon-reload keeps them), only the container is in it, and delete stops it", async () => {
    const id = `sd-${process.pid}`;
    const unit = `tsbox-${id}.scope`;
    const dir = bundle('scope', `system.slice:tsbox:${id}`);
    try {
      expect(await create(dir, id), readFileSync(join(dir, 'err'), 'utf8')).toBe(0);
      expect((await cli(['start', id], slow)).code).toBe(0);
      const pid = await pidOf(id);
      const cg = `/sys/fs/cgroup/system.slice/${unit}`;
      expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim()).toBe(`0::/system.slice/${unit}`);
      expect(show(unit, 'ActiveState')).toBe('active');
      expect(show(unit, 'Delegate')).toBe('yes');
      expect(show(unit, 'MemoryMax')).toBe(String(64 * MiB));
      expect(show(unit, 'TasksMax')).toBe('40');
      expect(readFileSync(join(cg, 'memory.max'), 'utf8').trim()).toBe(String(64 * MiB));
      expect(readFileSync(join(cg, 'pids.max'), 'utf8').trim()).toBe('40');
      // Only the container's processes: tsbox's helper and monitor went back where they came from.
      const procs = readFileSync(join(cg, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
      expect(procs).toContain(pid);
      const ns = readlinkSync(`/proc/${pid}/ns/pid`);
      for (const p of procs) expect(readlinkSync(`/proc/${p}/ns/pid`), `pid ${p} in the scope`).toBe(ns);
      // systemd realizes its units again on a reload: the limits are its own too.
      execFileSync('systemctl', ['daemon-reload']);
      expect(readFileSync(join(cg, 'memory.max'), 'utf8').trim()).toBe(String(64 * MiB));
      expect(readFileSync(join(cg, 'pids.max'), 'utf8').trim()).toBe('40');
      // update changes the unit's properties with the files: a reload keeps the new limits.
      const u = await cli(['update', '--memory', String(96 * MiB), '--pids-limit', '50', id], slow);
      expect(u.code, u.stderr).toBe(0);
      expect(show(unit, 'MemoryMax')).toBe(String(96 * MiB));
      expect(show(unit, 'TasksMax')).toBe('50');
      execFileSync('systemctl', ['daemon-reload']);
      expect(readFileSync(join(cg, 'memory.max'), 'utf8').trim()).toBe(String(96 * MiB));
      expect(readFileSync(join(cg, 'pids.max'), 'utf8').trim()).toBe('50');

      expect((await cli(['delete', '--force', id], slow)).code).toBe(0);
      expect(existsSync(cg)).toBe(false);
      expect(show(unit, 'LoadState')).toBe('not-found');
    } finally {
      await cli(['delete', '--force', id], slow);
    }
  });

  it("an empty cgroupsPath is system.slice's tsbox-<id>.scope; a nested slice is expanded as systemd does; a container that ends takes its scope with it", async () => {
    const id = `sd-empty-${process.pid}`;
    const dir = bundle('empty', undefined);
    try {
      expect(await create(dir, id), readFileSync(join(dir, 'err'), 'utf8')).toBe(0);
      expect(readFileSync(`/proc/${await pidOf(id)}/cgroup`, 'utf8').trim()).toBe(`0::/system.slice/tsbox-${id}.scope`);
    } finally {
      await cli(['delete', '--force', id], slow);
    }
    expect(show(`tsbox-${id}.scope`, 'LoadState')).toBe('not-found');

    const nested = `sd-nested-${process.pid}`;
    const ndir = bundle('nested', `machine-tsboxtest.slice:tsbox:${nested}`);
    const config = JSON.parse(readFileSync(join(ndir, 'config.json'), 'utf8'));
    config.process.args = ['true'];
    writeFileSync(join(ndir, 'config.json'), JSON.stringify(config));
    const r = await cli(['--systemd-cgroup', 'run', '--bundle', ndir, nested], slow);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(`/sys/fs/cgroup/machine.slice/machine-tsboxtest.slice/tsbox-${nested}.scope`)).toBe(false);
    expect(show(`tsbox-${nested}.scope`, 'LoadState')).toBe('not-found');
  });

  it('refuses a cgroupsPath that is not slice:prefix:name, and leaves nothing', async () => {
    const id = `sd-bad-${process.pid}`;
    const dir = bundle('bad', '/not/a/slice');
    const r = await cli(['--systemd-cgroup', 'create', '--bundle', dir, id], slow);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/config\(linux\.cgroupsPath\).*not systemd's slice:prefix:name/);
    expect((await cli(['state', id], slow)).code).not.toBe(0);
  });
});

/**
 * tsbox as an OCI runtime on pure cgroup v2 (issue 15), inside the test VM:
 * an exact cgroupsPath whose ancestors tsbox makes (enabling the
 * controllers down to it) and removes, update, pause through
 * cgroup.freeze, and events, as runc's callers drive them.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  scratch = mkdtempSync(join(tmpdir(), 'tsbox-vm-oci-'));
}, 120_000);
afterAll(async () => {
  await rootfs?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

const slow = { killAfterMs: 110_000 };

/** `tsbox create` with its stdio in files (the container keeps them). */
function create(dir: string, id: string): Promise<number | null> {
  const fds = [openSync(join(dir, 'out'), 'w'), openSync(join(dir, 'err'), 'w')];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'create', '--bundle', dir, id], { stdio: ['ignore', fds[0]!, fds[1]!] });
    for (const fd of fds) closeSync(fd);
    child.on('exit', resolve);
  });
}

async function status(id: string): Promise<string> {
  return (JSON.parse((await cli(['state', id], slow)).stdout) as { status: string }).status;
}

describe('an OCI container on cgroup v2', () => {
  it('lives at its exact cgroupsPath; update, pause, resume and events act on it; delete removes what create made', async () => {
    const id = `vm-oci-${process.pid}`;
    const base = `/tsbox-vm-oci-${process.pid}`;
    const dir = join(scratch, 'bundle');
    mkdirSync(dir);
    const config = runtimeToolsConfig(rootfs.dir, ['sleep', '60']);
    config.root.readonly = true;
    config.linux.cgroupsPath = `${base}/pod/c1`;
    config.linux.resources.pids = { limit: 40 };
    config.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    try {
      expect(await create(dir, id), readFileSync(join(dir, 'err'), 'utf8')).toBe(0);
      expect((await cli(['start', id], slow)).code).toBe(0);
      const pid = (JSON.parse((await cli(['state', id], slow)).stdout) as { pid: number }).pid;
      const leaf = `/sys/fs/cgroup${base}/pod/c1`;
      expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim()).toBe(`0::${base}/pod/c1`);
      expect(readFileSync(join(leaf, 'pids.max'), 'utf8').trim()).toBe('40');
      // No cgroup namespace: its own cgroup is bound at /sys/fs/cgroup, not the hierarchy's root.
      expect(readFileSync(`/proc/${pid}/root/sys/fs/cgroup/pids.max`, 'utf8').trim()).toBe('40');
      expect(existsSync(`/proc/${pid}/root/sys/fs/cgroup${base}`)).toBe(false);
      // The controllers were enabled all the way down.
      expect(readFileSync(`/sys/fs/cgroup${base}/pod/cgroup.subtree_control`, 'utf8')).toContain('pids');

      expect((await cli(['update', '--pids-limit', '50', id], slow)).code).toBe(0);
      expect(readFileSync(join(leaf, 'pids.max'), 'utf8').trim()).toBe('50');

      expect((await cli(['pause', id], slow)).code).toBe(0);
      expect(readFileSync(join(leaf, 'cgroup.freeze'), 'utf8').trim()).toBe('1');
      expect(await status(id)).toBe('paused');
      expect((await cli(['resume', id], slow)).code).toBe(0);
      expect(await status(id)).toBe('running');

      const stats = JSON.parse((await cli(['events', '--stats', id], slow)).stdout) as { data: { pids: { current: number; limit: number }; memory: { usage: { usage: number } } } };
      expect(stats.data.pids).toEqual({ current: 1, limit: 50 });
      expect(stats.data.memory.usage.usage).toBeGreaterThan(0);

      expect((await cli(['delete', '--force', id], slow)).code).toBe(0);
      expect(existsSync(`/sys/fs/cgroup${base}`)).toBe(false);
    } finally {
      await cli(['delete', '--force', id], slow);
    }
  });

  it('without a device cgroup (v1 has one; v2 would need an eBPF filter): deny all is held by nodev, so CAP_SYS_ADMIN and rules for some devices are refused', async () => {
    const dir = join(scratch, 'devices');
    mkdirSync(dir);
    const config = runtimeToolsConfig(rootfs.dir, ['true']);
    config.root.readonly = true;
    config.process.capabilities.bounding.push('CAP_SYS_ADMIN');
    config.linux.resources.devices = [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' }];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const id = `vm-oci-dev-${process.pid}`;
    expect(await create(dir, id)).not.toBe(0);
    const err = readFileSync(join(dir, 'err'), 'utf8');
    expect(err).toContain('linux.resources.devices[1]: allowing some devices needs a device cgroup, which tsbox has only on cgroup v1 and hybrid hosts, as root');
    expect(err).toContain('process.capabilities.bounding: has CAP_SYS_ADMIN');
    expect((await cli(['state', id], slow)).code).not.toBe(0);
  });
});

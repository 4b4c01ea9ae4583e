/**
 * tsbox as an OCI runtime on pure cgroup v2 (issue 15), inside the test VM:
 * an exact cgroupsPath whose ancestors tsbox makes (enabling the
 * controllers down to it) and removes, update, pause through
 * cgroup.freeze, and events, as runc's callers drive them; and device
 * rules, which pure v2 carries out with an eBPF program on the cgroup.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RUNTIME_TOOLS_DEVICE_RULES, runtimeToolsConfig } from '../support/oci.js';
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

/** CAP_SYSLOG in every set: what reading /dev/kmsg needs besides the device rules. */
function withSyslog(config: ReturnType<typeof runtimeToolsConfig>): void {
  for (const set of Object.values(config.process.capabilities)) set.push('CAP_SYSLOG');
}

/** create, start, wait until it has stopped: its stdout (create's, which it keeps). */
async function ranToEnd(dir: string, id: string): Promise<string> {
  expect(await create(dir, id), readFileSync(join(dir, 'err'), 'utf8')).toBe(0);
  expect((await cli(['start', id], slow)).code).toBe(0);
  for (let i = 0; i < 200 && (await status(id)) !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await status(id)).toBe('stopped');
  return readFileSync(join(dir, 'out'), 'utf8');
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

  it('device rules (runtime-tools\' and more) as the eBPF program on its cgroup: what they allow opens, what they deny gives EPERM, the defaults work; nothing is left', async () => {
    const path = `/tsbox-vm-oci-devices-${process.pid}`;
    const dir = join(scratch, 'devices');
    mkdirSync(dir);
    // Each line: what was tried, then "ok" or the shell's error (EPERM reads "Operation not permitted").
    const script = [
      'try() { if (eval "$2") 2>/tmp/e; then echo "$1 ok"; else echo "$1 $(sed "s/.*: //" /tmp/e)"; fi; }',
      // The default devices.
      'try null:w "echo x > /dev/null"',
      'try zero:r "head -c 1 /dev/zero > /dev/null"',
      'try urandom:r "head -c 1 /dev/urandom > /dev/null"',
      'try ptmx:rw "exec 3<>/dev/ptmx"',
      // No controlling terminal: the driver refuses (ENXIO), the filter does not.
      'try tty:rw "exec 3<>/dev/tty"',
      // A pts number with no terminal behind it: again the driver.
      'try pts:mknod "mknod /dev/pts9 c 136 9"',
      'try pts:rw "exec 3<>/dev/pts9"',
      // Allowed by the config: c 1:11 (kmsg) for reading only.
      'try kmsg:r "exec 3</dev/kmsg"',
      'try kmsg:w "exec 3>/dev/kmsg"',
      'try hostkmsg:r "exec 3</dev/hostkmsg"',
      'try hostkmsg:w "exec 3>/dev/hostkmsg"',
      // Made by linux.devices, denied (mem).
      'try mem:r "exec 3</dev/mem"',
      // mknod is allowed for every device (the defaults), opening is not.
      'try made:mknod "mknod /dev/made c 1 1"',
      'try made:r "exec 3</dev/made"',
      'try fuse:mknod "mknod /dev/fuse c 10 229"',
      'try fuse:rw "exec 3<>/dev/fuse"',
      'echo "cgroup $(cat /proc/self/cgroup)"',
    ].join('\n');
    const config = runtimeToolsConfig(rootfs.dir, ['sh', '-c', script]);
    config.root.readonly = true;
    config.linux.cgroupsPath = path;
    config.linux.resources.devices = [...RUNTIME_TOOLS_DEVICE_RULES, { allow: true, type: 'c', major: 1, minor: 11, access: 'r' }];
    // Reading /dev/kmsg also needs CAP_SYSLOG (kernel.dmesg_restrict): with it, the device rules alone decide.
    withSyslog(config);
    config.linux.devices = [
      { path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 },
      { path: '/dev/mem', type: 'c', major: 1, minor: 1, fileMode: 0o600 },
    ];
    config.mounts.push({ destination: '/dev/hostkmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] });
    config.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const id = `vm-oci-dev-${process.pid}`;
    try {
      const seen = await ranToEnd(dir, id);
      const EPERM = 'Operation not permitted';
      const lines = Object.fromEntries(seen.trim().split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)]));
      expect(lines, seen).toMatchObject({
        'null:w': 'ok',
        'zero:r': 'ok',
        'urandom:r': 'ok',
        'ptmx:rw': 'ok',
        'pts:mknod': 'ok',
        'kmsg:r': 'ok',
        'kmsg:w': EPERM,
        'hostkmsg:r': 'ok',
        'hostkmsg:w': EPERM,
        'mem:r': EPERM,
        'made:mknod': 'ok',
        'made:r': EPERM,
        'fuse:mknod': 'ok',
      });
      // Past the filter, the driver's answer (no terminal, no fuse module), never EPERM.
      for (const allowed of ['tty:rw', 'pts:rw', 'fuse:rw']) expect(lines[allowed], `${allowed} in ${seen}`).not.toBe(EPERM);
      expect(Object.keys(lines)).toHaveLength(17);
      // It ran in the cgroup the program was attached to (no cgroup namespace: the host's path).
      expect(lines.cgroup).toBe(`0::${path}`);
      expect((await cli(['delete', id], slow)).code).toBe(0);
      // The cgroup went, and the program with it.
      expect(existsSync(`/sys/fs/cgroup${path}`)).toBe(false);
    } finally {
      await cli(['delete', '--force', id], slow);
    }
  });

  it('device rules in a cgroupsPath that exists (joined, and kept): the program is detached when the container goes, the cgroup stays', async () => {
    const path = `/tsbox-vm-oci-kept-${process.pid}`;
    const cg = `/sys/fs/cgroup${path}`;
    mkdirSync(cg);
    const dir = join(scratch, 'devices-kept');
    mkdirSync(dir);
    const config = runtimeToolsConfig(rootfs.dir, ['sh', '-c', 'if (exec 3</dev/kmsg) 2>/dev/null; then echo kmsg:r ok; else echo kmsg:r denied; fi']);
    config.root.readonly = true;
    config.linux.cgroupsPath = path;
    // Everything denied but the default devices (which tsbox adds after these).
    config.linux.resources.devices = [{ allow: false, access: 'rwm' }];
    withSyslog(config);
    config.linux.devices = [{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 }];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const id = `vm-oci-kept-${process.pid}`;
    try {
      expect(await ranToEnd(dir, id)).toBe('kmsg:r denied\n');
      expect((await cli(['delete', id], slow)).code).toBe(0);
      expect(existsSync(cg)).toBe(true);
      // A process of the host's, put in the kept cgroup, opens the device the
      // container's rules denied: no device program is left on the cgroup.
      const probe = `const fs = require('node:fs'); fs.writeFileSync(${JSON.stringify(`${cg}/cgroup.procs`)}, String(process.pid)); try { fs.closeSync(fs.openSync('/dev/kmsg', 'r')); console.log('ok'); } catch (e) { console.log(e.code); }`;
      expect(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' })).toBe('ok\n');
    } finally {
      await cli(['delete', '--force', id], slow);
      // Made by this test; its processes are gone by now.
      if (existsSync(cg)) rmdirSync(cg);
    }
  });

  it('allow all with denials after it: mknod of a denied device is refused (EPERM), a partly denied access too', async () => {
    const dir = join(scratch, 'devices-allow');
    mkdirSync(dir);
    const script = [
      'try() { if (eval "$2") 2>/tmp/e; then echo "$1 ok"; else echo "$1 $(sed "s/.*: //" /tmp/e)"; fi; }',
      'try mem:mknod "mknod /dev/mem c 1 1"',
      'try kmsg:mknod "mknod /dev/kmsg c 1 11"',
      'try kmsg:r "exec 3</dev/kmsg"',
      'try kmsg:rw "exec 3<>/dev/kmsg"',
      'try null:w "echo x > /dev/null"',
    ].join('\n');
    const config = runtimeToolsConfig(rootfs.dir, ['sh', '-c', script]);
    config.root.readonly = true;
    config.linux.resources.devices = [
      { allow: true, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 1, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 11, access: 'w' },
    ];
    withSyslog(config);
    config.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const id = `vm-oci-dev2-${process.pid}`;
    try {
      const seen = await ranToEnd(dir, id);
      expect(seen).toBe(['mem:mknod Operation not permitted', 'kmsg:mknod ok', 'kmsg:r ok', 'kmsg:rw Operation not permitted', 'null:w ok', ''].join('\n'));
      expect((await cli(['delete', id], slow)).code).toBe(0);
    } finally {
      await cli(['delete', '--force', id], slow);
    }
  });

  it('as an ordinary user there is no device program (loading one needs CAP_SYS_ADMIN in the initial user namespace): rules for some devices are refused, saying so', async () => {
    const user = `tsbox-vm-dev-${process.pid}`;
    execFileSync('useradd', ['-M', '-s', '/bin/sh', user]);
    try {
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      const dir = join(scratch, 'devices-rootless');
      mkdirSync(dir);
      chownSync(scratch, uid, uid);
      chownSync(dir, uid, uid);
      const config = runtimeToolsConfig(rootfs.dir, ['true']);
      config.root.readonly = true;
      config.linux.namespaces.push({ type: 'user' });
      config.linux.uidMappings = [{ containerID: 0, hostID: uid, size: 1 }];
      config.linux.gidMappings = [{ containerID: 0, hostID: uid, size: 1 }];
      config.linux.resources.devices = RUNTIME_TOOLS_DEVICE_RULES;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      const id = `vm-oci-dev3-${process.pid}`;
      const r = await cli(['create', '--bundle', dir, id], { ...slow, uid, gid: uid, env: { ...process.env, XDG_RUNTIME_DIR: '' } });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('linux.resources.devices[1]: allowing some devices needs a device cgroup (cgroup v1) or an eBPF device program (cgroup v2), which tsbox has as root only: writing a device cgroup\'s rules and loading a device program need CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace');
      expect((await cli(['state', id], { ...slow, uid, gid: uid, env: { ...process.env, XDG_RUNTIME_DIR: '' } })).code).not.toBe(0);
    } finally {
      chownSync(scratch, 0, 0);
      execFileSync('userdel', [user]);
    }
  });
});

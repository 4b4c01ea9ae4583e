/**
 * What a container sees of the filesystem (issue 3): the mount table, /proc /sys
 * /dev, masked and read-only paths, the root modes, volumes, and that neither a
 * hostile rootfs nor the container can reach the host's files.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { detectCgroupMode } from '../../ts/cgroups/index.js';
import { cli, type ProbeInfo, scratchDir } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('fs');

async function run(args: string[], command: string[]) {
  return cli(['run', ...args, '--', ...command]);
}

async function info(...args: string[]): Promise<ProbeInfo> {
  const r = await run(['--rootfs', rootfs, ...args], ['tsbox-probe', 'info']);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as ProbeInfo;
}

/** Every path under `dir` with its type, mode, owner, size, mtime and content hash. */
async function fingerprint(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string) => {
    const p = join(dir, rel);
    const st = await fs.lstat(p);
    let extra = '';
    if (st.isSymbolicLink()) extra = await fs.readlink(p);
    else if (st.isFile()) extra = createHash('sha256').update(await fs.readFile(p)).digest('hex');
    lines.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${extra}`);
    if (st.isDirectory()) for (const e of (await fs.readdir(p)).sort()) await walk(join(rel, e));
  };
  await walk('.');
  return lines.join('\n');
}

/** A private copy of the test rootfs, for tests that change it. */
async function copyRootfs(name: string): Promise<string> {
  const dir = join(scratch, name);
  await fs.cp(rootfs, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  return dir;
}

describe('the mount table', () => {
  it('is exactly the expected set', async () => {
    const all = (await info()).mounts.map((m) => `${m.mountPoint} ${m.fsType}`);
    // The cgroup hierarchies come last, in no particular order among themselves.
    const firstCgroup = all.findIndex((m) => m.startsWith('/sys/fs/cgroup'));
    const mounts = [...all.slice(0, firstCgroup), ...all.slice(firstCgroup).sort()];
    expect(mounts).toEqual([
      '/ overlay',
      '/proc proc',
      '/sys sysfs',
      '/dev tmpfs',
      '/dev/null devtmpfs',
      '/dev/zero devtmpfs',
      '/dev/full devtmpfs',
      '/dev/random devtmpfs',
      '/dev/urandom devtmpfs',
      '/dev/tty devtmpfs',
      '/dev/pts devpts',
      '/dev/shm tmpfs',
      '/dev/mqueue mqueue',
      '/etc/hostname tmpfs',
      '/etc/hosts tmpfs',
      '/etc/resolv.conf tmpfs',
      // Masked paths that exist on this kernel (kcore, latency_stats, sched_debug... may not).
      ...['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi']
        .filter((p) => existsOnHost(p))
        .map((p) => `${p} ${isDirOnHost(p) ? 'tmpfs' : 'devtmpfs'}`),
      ...['/sys/firmware', '/sys/devices/virtual/powercap'].filter((p) => existsOnHost(p)).map((p) => `${p} tmpfs`),
      ...['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'].filter((p) => existsOnHost(p)).map((p) => `${p} proc`),
      // The container's own cgroups, read-only (one mount per hierarchy on v1),
      // last: the child mounts them once it is in its cgroup.
      ...cgroupMountsExpected(),
    ]);
  });

  it('has /sys read-only and /proc of its own', async () => {
    const m = (await info()).mounts;
    expect(m.find((x) => x.mountPoint === '/sys')!.options.split(',')).toContain('ro');
    expect(m.find((x) => x.mountPoint === '/proc')!.options.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
  });
});

/** What /sys/fs/cgroup holds inside: cgroup2 on v2; a tmpfs and the hierarchies tsbox uses otherwise. */
function cgroupMountsExpected(): string[] {
  if (detectCgroupMode() === 'v2') return ['/sys/fs/cgroup cgroup2'];
  // tsbox puts a container in every hierarchy the host has (its cgroup
  // namespace is rooted at a cgroup of its own in each), and mounts each.
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - cgroup2? /.test(l) && l.split(' ')[4]!.startsWith('/sys/fs/cgroup/'))
    .map((l) => `${l.split(' ')[4]} ${l.includes(' - cgroup2 ') ? 'cgroup2' : 'cgroup'}`);
  return ['/sys/fs/cgroup tmpfs', ...mounted].sort();
}

function existsOnHost(p: string): boolean {
  try {
    readFileSync(p, { flag: 'r' });
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EISDIR' || (e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EPERM' || (e as NodeJS.ErrnoException).code === 'EINVAL' || (e as NodeJS.ErrnoException).code === 'EIO';
  }
}
function isDirOnHost(p: string): boolean {
  try {
    readFileSync(p);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EISDIR';
  }
}

describe('/proc, /sys and /dev', () => {
  it('refuses writes to /proc/sys', async () => {
    const r = await run(['--rootfs', rootfs], ['tsbox-probe', 'write', '/proc/sys/kernel/domainname']);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, errno: 30 });
  });

  it('masks /proc/kcore (where the kernel has it), /proc/keys and /proc/timer_list, and /sys/firmware', async () => {
    const r = await run(['--rootfs', rootfs], ['sh', '-c', 'wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; [ -e /proc/kcore ] && wc -c < /proc/kcore || echo 0']);
    expect(r.stdout.trim().split('\n').map(Number)).toEqual([0, 0, 0, 0]);
    // And on the host they have content: the mask is what hides it.
    expect(readFileSync('/proc/timer_list', 'utf8').length).toBeGreaterThan(0);
  });

  it('lists exactly the minimal /dev', async () => {
    const r = await run(['--rootfs', rootfs], ['ls', '-A', '/dev']);
    expect(r.stdout.trim().split('\n')).toEqual(['fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
    const links = await run(['--rootfs', rootfs], ['sh', '-c', 'for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; ls /dev/pts']);
    expect(links.stdout.trim().split('\n')).toEqual(['/proc/self/fd', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2', 'pts/ptmx', 'ptmx']);
  });

  it('reads and writes the device nodes it has, and no other', async () => {
    const r = await run(['--rootfs', rootfs], ['sh', '-c', 'head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; head -c 8 /dev/urandom | wc -c; ls /dev/sda /dev/mem /dev/kmsg 2>&1 | wc -l']);
    expect(r.stdout.trim().split('\n')).toEqual(['4', 'null-ok', '8', '3']);
  });
});

describe('/sys without a network namespace of its own (mounts review, item 4)', () => {
  // A fresh sysfs of the host's network namespace is the host's superblock,
  // which the kernel will not mount again where the host's root (bound as
  // the container's) has it already: EBUSY. The host's /sys is bound instead.
  for (const [what, args] of [
    ['on the host\'s root', []],
    ['on a rootfs', ['--rootfs', rootfs]],
  ] as const) {
    it(`--userns host --network host ${what}: runs, with /sys read-only and its masks over it`, async () => {
      const r = await run(['--userns', 'host', '--network', 'host', ...args], ['sh', '-c', 'grep " /sys " /proc/self/mountinfo | tail -n 1 | cut -d" " -f6; mkdir /sys/tsbox-x 2>&1; ls -A /sys/firmware | wc -l; ls /sys/class/net | grep -c "^lo$"']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // The topmost /sys (the host's root has the host's below it).
      const [options, mkdir, firmware, lo] = r.stdout.trim().split('\n');
      expect(options!.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
      expect(mkdir).toMatch(/Read-only file system/);
      expect(firmware).toBe('0');
      // The host's network devices: it shares the host's network namespace.
      expect(lo).toBe('1');
    });
  }
});

describe('root modes', () => {
  it('never changes the rootfs directory, however the container writes (default overlay)', async () => {
    const dir = await copyRootfs('overlay-root');
    const before = await fingerprint(dir);
    const r = await run(['--rootfs', dir], [
      'sh',
      '-c',
      'for d in / /etc /bin /tmp /root /home /usr/bin /var /run; do echo x > $d/written || exit 1; done; echo y >> /etc/passwd; rm /bin/ls; chmod 700 /etc; mkdir -p /new/dir; ln -s /x /bin/zz-link; echo done',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('done');
    expect(await fingerprint(dir)).toBe(before);
  });

  it('sees its own writes during the run, owned by container root', async () => {
    const r = await run(['--rootfs', rootfs], ['sh', '-c', 'echo hi > /etc/motd; cat /etc/motd; stat -c %u:%g /etc/motd /etc/passwd']);
    expect(r.stdout.trim().split('\n')).toEqual(['hi', '0:0', '0:0']);
  });

  it('--read-only refuses writes to the root but gives a writable /tmp and /run', async () => {
    const ro = await run(['--rootfs', rootfs, '--read-only'], ['tsbox-probe', 'write', '/etc/x']);
    expect(JSON.parse(ro.stdout)).toMatchObject({ ok: false, errno: 30 });
    const tmp = await run(['--rootfs', rootfs, '--read-only'], ['sh', '-c', 'echo a > /tmp/a && echo a > /run/a && cat /tmp/a /run/a']);
    expect(tmp.stdout).toBe('a\na\n');
  });

  it('--writable-rootfs writes into the directory itself, as container root\'s own host id', async () => {
    const dir = await copyRootfs('writable-root');
    const r = await run(['--rootfs', dir, '--writable-rootfs'], ['sh', '-c', 'echo kept > /tmp/file; stat -c %u /tmp/file; echo no > /root/file']);
    expect(r.stdout).toBe('0\n');
    expect(r.stderr).toMatch(/Permission denied/);
    expect(await fs.readFile(join(dir, 'tmp/file'), 'utf8')).toBe('kept\n');
    // Not idmapped unless asked: container root is an unprivileged host id,
    // and host root's /root is not its to write.
    expect((await fs.stat(join(dir, 'tmp/file'))).uid).toBeGreaterThanOrEqual(0x7000_0000);
    await expect(fs.stat(join(dir, 'root/file'))).rejects.toThrow(/ENOENT/);
  });

  it('--rootfs DIR:idmap --writable-rootfs: container root is host root in the directory, as asked', async () => {
    const dir = await copyRootfs('writable-idmap-root');
    const r = await run(['--rootfs', `${dir}:idmap`, '--writable-rootfs'], ['sh', '-c', 'echo kept > /root/file']);
    expect(r.code, r.stderr).toBe(0);
    expect(await fs.readFile(join(dir, 'root/file'), 'utf8')).toBe('kept\n');
    expect((await fs.stat(join(dir, 'root/file'))).uid).toBe(0);
  });

  it('rejects --writable-rootfs with --read-only, and without a rootfs', async () => {
    const both = await run(['--rootfs', rootfs, '--read-only', '--writable-rootfs'], ['true']);
    expect(both.code).toBe(125);
    expect(both.stderr).toMatch(/^tsbox: config\(--writable-rootfs\): cannot be combined with readOnly \(--read-only\)/);
    const hostRoot = await run(['--writable-rootfs'], ['true']);
    expect(hostRoot.stderr).toMatch(/^tsbox: config\(--writable-rootfs\): needs a rootfs/);
  });

  it('creates a missing working directory in the writable layer only', async () => {
    const dir = await copyRootfs('workdir-root');
    const r = await run(['--rootfs', dir, '-w', '/srv/app'], ['sh', '-c', 'pwd']);
    expect(r.stdout.trim()).toBe('/srv/app');
    await expect(fs.stat(join(dir, 'srv'))).rejects.toThrow(/ENOENT/);
  });
});

describe('generated /etc files', () => {
  it('writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the container', async () => {
    const r = await run(['--rootfs', rootfs, '--hostname', 'web-1'], ['sh', '-c', 'cat /etc/hostname; grep -c "localhost web-1" /etc/hosts; grep -c "nameserver 127." /etc/resolv.conf']);
    expect(r.stdout.trim().split('\n')).toEqual(['web-1', '1', '0']);
  });

  it('replaces the host name on the default root too', async () => {
    const r = await run(['--hostname', 'box'], ['cat', '/etc/hostname']);
    expect(r.stdout).toBe('box\n');
  });
});

describe('volumes', () => {
  it('binds a directory read-write: writes reach the host, as container root\'s own host id', async () => {
    const vol = await fs.mkdtemp(join(scratch, 'rw-'));
    await fs.chmod(vol, 0o777);
    const r = await run(['--rootfs', rootfs, '-v', `${vol}:/data`], ['sh', '-c', 'echo hello > /data/out && stat -c %u /data/out']);
    expect(r.stdout.trim()).toBe('0');
    expect(await fs.readFile(join(vol, 'out'), 'utf8')).toBe('hello\n');
    expect((await fs.stat(join(vol, 'out'))).uid).toBeGreaterThanOrEqual(0x7000_0000);
  });

  it('binds a directory with :idmap: container root is host root there, as asked', async () => {
    const vol = await fs.mkdtemp(join(scratch, 'idmap-'));
    const r = await run(['--rootfs', rootfs, '-v', `${vol}:/data:rw,idmap`, '--mount', `type=bind,source=${vol},target=/m,idmap`], ['sh', '-c', 'echo hello > /data/out && stat -c %u /data/out /m/out']);
    expect(r.stdout.trim().split('\n')).toEqual(['0', '0']);
    expect((await fs.stat(join(vol, 'out'))).uid).toBe(0);
  });

  it('a volume that asked for :idmap on a filesystem the kernel cannot idmap is an error, never a bind with the host\'s ids', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '-v', '/sys/kernel:/data:ro,idmap', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('idmap(/sys/kernel): EINVAL — make an idmapped mount of the volume');
  });

  it('binds read-only: writes are refused and the host is unchanged', async () => {
    const vol = await fs.mkdtemp(join(scratch, 'ro-'));
    // Not idmapped: host root's 0700 directory would be nobody's to read.
    await fs.chmod(vol, 0o755);
    await fs.writeFile(join(vol, 'in'), 'orig');
    const r = await run(['--rootfs', rootfs, '-v', `${vol}:/data:ro`], ['sh', '-c', 'cat /data/in; echo; tsbox-probe write /data/in']);
    const [content, verdict] = r.stdout.trim().split('\n');
    expect(content).toBe('orig');
    expect(JSON.parse(verdict!)).toMatchObject({ ok: false, errno: 30 });
    expect(await fs.readFile(join(vol, 'in'), 'utf8')).toBe('orig');
  });

  it('binds a single file, and Docker --mount syntax', async () => {
    const file = join(scratch, 'config.txt');
    await fs.writeFile(file, 'cfg');
    const r = await run(['--rootfs', rootfs, '-v', `${file}:/etc/app.conf:ro`, '--mount', `type=bind,source=${file},target=/opt/c,readonly`, '--mount', 'type=tmpfs,target=/scratch,tmpfs-size=1m'], [
      'sh',
      '-c',
      'cat /etc/app.conf /opt/c; echo; df -k /scratch | tail -1 | tr -s " " | cut -d" " -f2',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['cfgcfg', '1024']);
  });

  it('mounts --tmpfs with its size and mode', async () => {
    const r = await run(['--rootfs', rootfs, '--tmpfs', '/cache:size=2m,mode=700'], ['sh', '-c', 'stat -c %a /cache; df -k /cache | tail -1 | tr -s " " | cut -d" " -f2']);
    expect(r.stdout.trim().split('\n')).toEqual(['700', '2048']);
  });

  it('creates missing mount points in the writable layer, never in the rootfs', async () => {
    const dir = await copyRootfs('mountpoint-root');
    const before = await fingerprint(dir);
    const vol = await fs.mkdtemp(join(scratch, 'mp-'));
    const r = await run(['--rootfs', dir, '-v', `${vol}:/deep/new/dir`, '--tmpfs', '/also/new'], ['sh', '-c', 'ls -d /deep/new/dir /also/new']);
    expect(r.code).toBe(0);
    expect(await fingerprint(dir)).toBe(before);
  });

  it('names the volume when its host path is missing, or a part of it is bad', async () => {
    const missing = await run(['--rootfs', rootfs, '-v', '/nonexistent/tsbox-vol:/data'], ['true']);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/^tsbox: volume\(\/nonexistent\/tsbox-vol\): ENOENT — the host path of the volume \/nonexistent\/tsbox-vol:\/data does not exist/);
    const badOpt = await run(['--rootfs', rootfs, '-v', `${scratch}:/data:rox`], ['true']);
    expect(badOpt.stderr).toMatch(/^tsbox: config\(--volume \S+\): .*unknown option "rox"/);
    const relative = await run(['--rootfs', rootfs, '-v', `${scratch}:data`], ['true']);
    expect(relative.stderr).toMatch(/^tsbox: config\(--volume \S+\): .*must be absolute/);
    const badMount = await run(['--rootfs', rootfs, '--mount', 'type=volume,target=/x'], ['true']);
    expect(badMount.stderr).toMatch(/^tsbox: config\(--mount \S+\): .*type=volume is not supported/);
  });
});

describe('a hostile rootfs', () => {
  it('cannot redirect a volume onto the host through a symlink', async () => {
    const dir = await copyRootfs('evil-root');
    await fs.symlink('/', join(dir, 'evil'));
    const vol = await fs.mkdtemp(join(scratch, 'evil-vol-'));
    await fs.chmod(vol, 0o755);
    await fs.writeFile(join(vol, 'marker'), 'm');
    // /evil -> / resolves to the container's own root: the volume lands at /x inside.
    const r = await run(['--rootfs', dir, '-v', `${vol}:/evil/x`], ['cat', '/x/marker']);
    expect(r.stdout).toBe('m');
    await expect(fs.stat('/x')).rejects.toThrow(/ENOENT/);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(/ \/x /);
  });

  it('cannot hang the launch with a FIFO where /etc/passwd should be', async () => {
    const dir = await copyRootfs('fifo-root');
    await fs.rm(join(dir, 'etc/passwd'));
    execFileSync('mkfifo', [join(dir, 'etc/passwd')]);
    const r = await cli(['run', '--rootfs', dir, '--', 'sh', '-c', 'echo $HOME'], { killAfterMs: 10_000 });
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe('/root\n');
  });

  it('refuses a volume behind a symlink to a host path the rootfs does not have', async () => {
    const dir = await copyRootfs('evil2-root');
    const hostTarget = await fs.mkdtemp(join(scratch, 'host-target-'));
    await fs.symlink(hostTarget, join(dir, 'evil2'));
    const vol = await fs.mkdtemp(join(scratch, 'evil2-vol-'));
    const r = await run(['--rootfs', dir, '-v', `${vol}:/evil2/y`], ['true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^tsbox: mount\(\/evil2(\/y)?\): ENOENT — resolve the mount target inside the rootfs/);
    // The host directory the symlink names is untouched.
    expect(await fs.readdir(hostTarget)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(hostTarget);
  });
});

describe('rootfs propagation', () => {
  it('is private by default and shared when asked', async () => {
    const line = async (...args: string[]) => (await run(['--rootfs', rootfs, ...args], ['sh', '-c', "grep ' / / ' /proc/self/mountinfo"])).stdout;
    expect(await line()).not.toMatch(/shared:/);
    expect(await line('--rootfs-propagation', 'shared')).toMatch(/shared:\d+/);
    const bad = await run(['--rootfs', rootfs, '--rootfs-propagation', 'sideways'], ['true']);
    expect(bad.stderr).toMatch(/^tsbox: config\(--rootfs-propagation \S+\)/);
  });
});

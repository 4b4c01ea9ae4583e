// buildPlan (ts/runtime/plan.ts): the sandbox and process plans decided before anything is
// cloned. Nothing here starts a container or loads the native addon.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { DEFAULT_CAPABILITIES, DEFAULT_PATH } from '../../ts/config/defaults.js';
import { parseRunInput, type RunOptions } from '../../ts/config/schema.js';
import { TsboxError } from '../../ts/errors.js';
import { rejection } from '../support/errors.js';
import { ALL_NAMESPACES, buildPlan, buildProcessPlan, defaultStorageSize, DEVICES, etcFiles, planFor, processTemplate, systemMounts, type PlanMount, type ProcessPlan, type SandboxPlan } from '../../ts/runtime/plan.js';

/** Both plans, read as one (no field is in both but `trace`, which they share). */
type Plan = SandboxPlan & ProcessPlan;
const merged = (p: { sandbox: SandboxPlan; process: ProcessPlan }): Plan => ({ ...p.sandbox, ...p.process });

const PLAN_VERSION = 7;

function plan(options: RunOptions = {}, command: string[] = ['sh', '-c', 'true'], hostname = 'box'): Plan {
  const parsed = parseRunInput(command, options);
  return merged(buildPlan(parsed.command, parsed.options, { hostname, traceT0Ns: 123_456_789n, planVersion: PLAN_VERSION, idmap: false, seccomp: fakeCompiler }));
}

const at = (p: Plan, target: string): PlanMount[] => p.mounts.filter((m) => m.target === target);
const only = (p: Plan, target: string): PlanMount => {
  const ms = at(p, target);
  expect(ms, `exactly one mount at ${target}`).toHaveLength(1);
  return ms[0]!;
};
const envOf = (p: Plan): Map<string, string> => new Map(p.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

/** The seed program's (contained.c) drops, plus the newer capabilities DESIGN.md adds. */
const SEED_DROPS = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'DAC_READ_SEARCH', 'FSETID', 'IPC_LOCK', 'MAC_ADMIN',
  'MAC_OVERRIDE', 'MKNOD', 'SETFCAP', 'SYSLOG', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_RAWIO',
  'SYS_RESOURCE', 'SYS_TIME', 'WAKE_ALARM', 'BPF', 'PERFMON', 'CHECKPOINT_RESTORE',
].map((c) => `CAP_${c}`);

/** Docker's default capability set. */
const DOCKER_DEFAULT = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
].map((c) => `CAP_${c}`);

/** Stands in for the addon's compiler: records what it was asked for. */
const compiled: (string | null)[] = [];
const fakeCompiler = {
  compileSeccomp(json: string | null): Buffer {
    compiled.push(json);
    return Buffer.from([0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]);
  },
  seccompProblems: () => [],
};

describe('seccomp in the plan', () => {
  it('compiles the default profile in the parent and carries the program as hex', () => {
    compiled.length = 0;
    expect(plan().seccomp).toBe('060000000000ff7f');
    expect(compiled).toEqual([null]);
  });

  it('carries no program when unconfined', () => {
    expect(plan({ seccomp: 'unconfined' }).seccomp).toBeNull();
  });
});

describe('buildPlan without a rootfs: the host root, read-only', () => {
  const p = plan();

  it('uses / read-only as the root', () => {
    expect(p.rootfs).toEqual({ kind: 'path', path: '/', mode: 'readonly', idmap: false, nodev: true });
  });

  it('gives /tmp and /run writable scratch directories, nosuid and nodev, within the storage limit', () => {
    for (const target of ['/tmp', '/run']) {
      const m = only(p, target);
      expect(m).toMatchObject({ type: 'scratch', nosuid: true, nodev: true });
      expect(m.readonly ?? false).toBe(false);
    }
    expect(only(p, '/tmp')).toMatchObject({ mode: 0o1777 });
    expect(p.storageSize).toBe(defaultStorageSize());
  });

  it('bounds storage by default to the smaller of 1 GiB and an eighth of RAM', () => {
    expect(defaultStorageSize(64 * 1024 ** 3)).toBe(1024 ** 3);
    expect(defaultStorageSize(2 * 1024 ** 3)).toBe(256 * 1024 ** 2);
    expect(plan({ storageSize: '64m' }).storageSize).toBe(64 * 1024 ** 2);
  });

  it('mounts a fresh proc on /proc with nosuid, nodev and noexec', () => {
    expect(only(p, '/proc')).toMatchObject({ type: 'fs', fstype: 'proc', nosuid: true, nodev: true, noexec: true });
  });

  it('mounts sysfs read-only on /sys', () => {
    expect(only(p, '/sys')).toMatchObject({ type: 'fs', fstype: 'sysfs', readonly: true, nosuid: true, nodev: true, noexec: true });
  });

  it('mounts a tmpfs /dev (nosuid) before anything inside it', () => {
    const dev = only(p, '/dev');
    expect(dev).toMatchObject({ type: 'fs', fstype: 'tmpfs', nosuid: true });
    const devIndex = p.mounts.indexOf(dev);
    p.mounts.forEach((m, i) => {
      if (m.target.startsWith('/dev/')) expect(i, `${m.target} after /dev`).toBeGreaterThan(devIndex);
    });
  });

  it('binds exactly null, zero, full, random, urandom and tty from the host /dev', () => {
    const binds = p.mounts.filter((m): m is Extract<PlanMount, { type: 'bind' }> => m.type === 'bind');
    expect(binds.map((b) => b.target).sort()).toEqual(['/dev/full', '/dev/null', '/dev/random', '/dev/tty', '/dev/urandom', '/dev/zero']);
    expect([...DEVICES].sort()).toEqual(['full', 'null', 'random', 'tty', 'urandom', 'zero']);
    for (const b of binds) {
      expect(b.source).toBe(b.target);
      expect(b.recursive).toBe(false);
      expect(b.nosuid).toBe(true);
      expect(b.noexec).toBe(true);
      // A device bind must not be nodev, or the device would not work.
      expect(b.nodev ?? false).toBe(false);
      // Read-only: the node is the host's inode, which chmod and chown must not reach.
      expect(b.readonly).toBe(true);
    }
  });

  it('mounts a private devpts instance and links /dev/ptmx to it', () => {
    const pts = only(p, '/dev/pts');
    expect(pts).toMatchObject({ type: 'fs', fstype: 'devpts', nosuid: true, noexec: true });
    expect(pts.type === 'fs' ? pts.data : null).toMatch(/(^|,)newinstance(,|$)/);
    expect(pts.type === 'fs' ? pts.data : null).toMatch(/(^|,)ptmxmode=0666(,|$)/);
    const ptmx = only(p, '/dev/ptmx');
    expect(ptmx).toEqual({ target: '/dev/ptmx', type: 'symlink', link: 'pts/ptmx' });
    expect(p.mounts.indexOf(ptmx)).toBeGreaterThan(p.mounts.indexOf(pts));
  });

  it('links /dev/fd, stdin, stdout and stderr into /proc/self/fd', () => {
    expect(only(p, '/dev/fd')).toEqual({ target: '/dev/fd', type: 'symlink', link: '/proc/self/fd' });
    expect(only(p, '/dev/stdin')).toEqual({ target: '/dev/stdin', type: 'symlink', link: '/proc/self/fd/0' });
    expect(only(p, '/dev/stdout')).toEqual({ target: '/dev/stdout', type: 'symlink', link: '/proc/self/fd/1' });
    expect(only(p, '/dev/stderr')).toEqual({ target: '/dev/stderr', type: 'symlink', link: '/proc/self/fd/2' });
  });

  it('mounts nothing twice', () => {
    const targets = p.mounts.map((m) => m.target);
    expect(new Set(targets).size).toBe(targets.length);
  });

  it('uses only absolute targets and no host path other than /dev devices as a bind source', () => {
    for (const m of p.mounts) {
      expect(m.target.startsWith('/')).toBe(true);
      if (m.type === 'bind') expect(m.source).toMatch(/^\/dev\/[a-z]+$/);
    }
  });
});

describe('buildPlan with a rootfs directory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-plan-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses that directory under an overlay, and mounts no tmpfs on /tmp or /run', () => {
    const p = plan({ rootfs: dir });
    expect(p.rootfs).toEqual({ kind: 'path', path: dir, mode: 'overlay', idmap: false, nodev: true });
    expect(at(p, '/tmp')).toEqual([]);
    expect(at(p, '/run')).toEqual([]);
    // /proc, /sys and /dev are still set up.
    expect(only(p, '/proc')).toMatchObject({ fstype: 'proc' });
    expect(only(p, '/sys')).toMatchObject({ fstype: 'sysfs', readonly: true });
    expect(only(p, '/dev/null')).toMatchObject({ type: 'bind' });
  });

  it('idmaps the rootfs under the overlay and read-only, but not written into unless asked, nor volumes unless asked', () => {
    const withRange = (options: RunOptions) => {
      const parsed = parseRunInput(['true'], options);
      return merged(buildPlan(parsed.command, parsed.options, { hostname: 'box', traceT0Ns: 0n, planVersion: PLAN_VERSION, idmap: true, seccomp: fakeCompiler }));
    };
    expect(withRange({ rootfs: dir }).rootfs.idmap).toBe(true);
    expect(withRange({ rootfs: dir, readOnly: true }).rootfs.idmap).toBe(true);
    expect(withRange({ rootfs: dir, writableRootfs: true }).rootfs.idmap).toBe(false);
    expect(withRange({ rootfs: dir, writableRootfs: true, rootfsIdmap: true }).rootfs.idmap).toBe(true);
    expect(withRange({ rootfs: dir, rootfsIdmap: false }).rootfs.idmap).toBe(false);
    const vols = withRange({ rootfs: dir, volumes: [`${dir}:/plain`, `${dir}:/shifted:idmap`] }).mounts.filter((m) => m.type === 'bind' && m.source === dir);
    expect(vols.map((m) => [m.target, m.type === 'bind' && m.idmap])).toEqual([['/plain', false], ['/shifted', true]]);
    // Without a range of ids there is nothing to shift into: asking is an error.
    expect(() => plan({ rootfs: dir, volumes: [`${dir}:/shifted:idmap`] })).toThrow(/asks for an idmapped mount/);
    expect(() => plan({ rootfs: dir, writableRootfs: true, rootfsIdmap: true })).toThrow(/rootfsIdmap asks for an idmapped mount/);
  });

  it('makes the root nodev in every mode, and every volume bind (review 31, item 2)', () => {
    for (const o of [{ rootfs: dir }, { rootfs: dir, readOnly: true }, { rootfs: dir, writableRootfs: true }, { rootfs: dir, userns: 'host' as const }]) {
      expect(plan(o).rootfs.nodev, JSON.stringify(o)).toBe(true);
    }
    const p = plan({ rootfs: dir, volumes: [`${dir}:/v`, `${dir}:/r:ro`], mounts: [`type=bind,source=${dir},target=/m`] });
    const vols = p.mounts.filter((m) => m.type === 'bind' && m.source === dir);
    expect(vols.map((m) => [m.target, m.nodev])).toEqual([['/v', true], ['/r', true], ['/m', true]]);
  });

  it('leaves whether a volume is a device to the helper, which looks at the descriptor it binds (mounts review, item 3)', () => {
    // The plan is the same whatever the path is when it is built: a
    // symlink swapped before the helper opens it cannot choose the answer.
    const link = join(dir, 'link');
    const planned = () => plan({ rootfs: dir, volumes: [`${link}:/dev/xfull`] }).mounts.find((m) => m.target === '/dev/xfull');
    symlinkSync('/dev/full', link);
    const toDevice = planned();
    rmSync(link);
    symlinkSync(dir, link);
    expect(planned()).toEqual(toDevice);
    expect(toDevice).toMatchObject({ type: 'bind', source: link, nodev: true, devIfDevice: true });
  });

  it('resolves a relative rootfs to an absolute path', () => {
    const rel = relative(process.cwd(), dir);
    expect(rel.startsWith('/')).toBe(false);
    expect(plan({ rootfs: rel }).rootfs.path).toBe(dir);
    expect(plan({ rootfs: `${dir}/./` }).rootfs.path).toBe(dir);
  });

  it('rejects a missing rootfs: step open_rootfs, ENOENT, with the path', () => {
    const missing = join(dir, 'does-not-exist');
    let err: unknown;
    try {
      plan({ rootfs: missing });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsboxError);
    const e = err as TsboxError;
    expect(e.step).toBe('open_rootfs');
    expect(e.errno).toBe(2);
    expect(e.path).toBe(missing);
    expect(e.message).toContain(missing);
    expect(e.message).toContain('ENOENT');
    expect(e.hint).toBeTruthy();
    expect(e.exitCode).toBe(125);
  });

  it('rejects a rootfs that is a regular file: ENOTDIR', () => {
    const file = join(dir, 'rootfs.tar');
    writeFileSync(file, 'not a directory');
    let err: unknown;
    try {
      plan({ rootfs: file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsboxError);
    const e = err as TsboxError;
    expect(e.step).toBe('open_rootfs');
    expect(e.errno).toBe(20);
    expect(e.path).toBe(file);
    expect(e.message).toContain('ENOTDIR');
  });

  it('rejects a rootfs below a regular file: ENOTDIR', () => {
    const file = join(dir, 'f');
    writeFileSync(file, '');
    expect(() => plan({ rootfs: join(file, 'sub') })).toThrow(expect.objectContaining({ step: 'open_rootfs', errno: 20 }));
  });
});

describe('buildPlan: namespaces, environment, privileges', () => {
  it('requests all seven namespaces', () => {
    const p = plan();
    expect([...p.namespaces].sort()).toEqual(['cgroup', 'ipc', 'mount', 'net', 'pid', 'user', 'uts']);
    expect([...ALL_NAMESPACES].sort()).toEqual([...p.namespaces].sort());
  });

  it('sets PATH and HOSTNAME (the given hostname), and leaves HOME to the container user by default', () => {
    const p = plan({}, ['true'], 'c0ffee123456');
    expect(p.hostname).toBe('c0ffee123456');
    const env = envOf(p);
    expect(env.get('PATH')).toBe(DEFAULT_PATH);
    expect(env.get('PATH')!.split(':')).toEqual(expect.arrayContaining(['/usr/bin', '/bin', '/usr/sbin', '/sbin']));
    expect(env.get('HOSTNAME')).toBe('c0ffee123456');
    expect(env.has('HOME')).toBe(false);
    expect(p.env).toHaveLength(2);
  });

  it('does not leak the host environment into the container', () => {
    const key = `TSBOX_UNIT_LEAK_${process.pid}`;
    process.env[key] = 'secret';
    try {
      expect(plan().env.some((e) => e.startsWith(`${key}=`))).toBe(false);
    } finally {
      delete process.env[key];
    }
  });

  it('lets the user env override the defaults, once each, and adds the rest', () => {
    const p = plan({ env: { PATH: '/opt/bin', HOME: '/home/x', HOSTNAME: 'other', EXTRA: 'a=b' } }, ['true'], 'box');
    const env = envOf(p);
    expect(env.get('PATH')).toBe('/opt/bin');
    expect(env.get('HOME')).toBe('/home/x');
    expect(env.get('HOSTNAME')).toBe('other');
    expect(env.get('EXTRA')).toBe('a=b');
    expect(p.env.filter((e) => e.startsWith('PATH='))).toEqual(['PATH=/opt/bin']);
    expect(p.env).toHaveLength(4);
  });

  it('keeps none of the capabilities the seed program drops', () => {
    const caps = plan().capabilities;
    expect(caps).not.toBeNull();
    for (const c of SEED_DROPS) expect(caps, c).not.toContain(c);
  });

  it('keeps only capabilities from Docker\'s default set, each once, in the bounding, permitted and effective sets', () => {
    const caps = plan().capabilities!;
    expect(caps.bounding.length).toBeGreaterThan(0);
    for (const c of caps.bounding) expect(DOCKER_DEFAULT, c).toContain(c);
    expect(new Set(caps.bounding).size).toBe(caps.bounding.length);
    expect(caps.permitted).toEqual(caps.bounding);
    expect(caps.effective).toEqual(caps.bounding);
    // Docker since CVE-2022-24769: nothing inheritable, nothing ambient.
    expect(caps.inheritable).toEqual([]);
    expect(caps.ambient).toEqual([]);
  });

  it('gives each plan its own copy of the capability list', () => {
    const a = plan();
    a.capabilities!.bounding.push('CAP_SYS_ADMIN');
    expect(plan().capabilities!.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(DEFAULT_CAPABILITIES).not.toContain('CAP_SYS_ADMIN');
  });

  it('sets no_new_privs, runs as container root, and carries the plan version given', () => {
    const p = plan();
    expect(p.noNewPrivileges).toBe(true);
    expect(p.version).toBe(PLAN_VERSION);
    expect(p.user).toEqual({ user: '0', group: null, additionalGroups: [] });
    expect(plan({ user: 'tester:staff', groupAdd: ['audio'] }).user).toEqual({ user: 'tester', group: 'staff', additionalGroups: ['audio'] });
    expect(plan({ userns: 'host' }).namespaces).not.toContain('user');
    expect(plan({ capDrop: ['ALL'], capAdd: ['net_admin'] }).capabilities!.effective).toEqual(['CAP_NET_ADMIN']);
  });

  it('carries argv, cwd, init, trace and the trace start as given', () => {
    const p = plan({ cwd: '/srv', init: false, trace: true }, ['echo', 'a b', '']);
    expect(p.argv).toEqual(['echo', 'a b', '']);
    expect(p.cwd).toBe('/srv');
    expect(p.init).toBe(false);
    expect(p.trace).toBe(true);
    expect(p.traceT0Ns).toBe(123_456_789);
    expect(p.parentPid).toBe(process.pid);
    const d = plan();
    expect(d.cwd).toBe('/');
    expect(d.init).toBe(true);
    expect(d.trace).toBe(false);
  });
});

describe('a process template (a pool builds one per set of call options)', () => {
  const parsed = (options: RunOptions) => parseRunInput(['true'], options).options;

  it('makes, per command and hostname, the plan buildProcessPlan makes', () => {
    const o = parsed({ env: { A: '1' }, cwd: '/tmp', user: '1000:100', capDrop: ['CHOWN'], ulimits: { nofile: 64 } });
    const t = processTemplate(o, fakeCompiler);
    for (const [argv, host] of [[['sh', '-c', 'echo a'], 'one'], [['id'], 'two']] as const) {
      expect(planFor(t, [...argv], host)).toEqual(buildProcessPlan([...argv], o, host, fakeCompiler));
    }
  });

  it('gives each plan its own argv and env, with its own sandbox’s HOSTNAME', () => {
    const t = processTemplate(parsed({ env: { A: '1' } }), fakeCompiler);
    const argv = ['echo', 'x'];
    const a = planFor(t, argv, 'aaa');
    const b = planFor(t, ['id'], 'bbb');
    argv.push('changed');
    expect(a.argv).toEqual(['echo', 'x']);
    expect(a.env).not.toBe(b.env);
    expect(envOf({ env: a.env } as Plan).get('HOSTNAME')).toBe('aaa');
    expect(envOf({ env: b.env } as Plan).get('HOSTNAME')).toBe('bbb');
    expect(t.env).not.toContain('HOSTNAME=aaa');
  });

  it('keeps a HOSTNAME the options set, in every plan', () => {
    const t = processTemplate(parsed({ env: { HOSTNAME: 'mine' } }), fakeCompiler);
    expect(t.hostnameAt).toBeNull();
    expect(planFor(t, ['true'], 'box').env.filter((e) => e.startsWith('HOSTNAME='))).toEqual(['HOSTNAME=mine']);
  });

  it('checks each command’s size against the kernel’s limit', () => {
    const t = processTemplate(parsed({}), fakeCompiler);
    expect(() => planFor(t, ['x'.repeat(200_000)], 'box')).toThrow(TsboxError);
  });
});

describe('buildPlan: the cgroup, and what the helper does for Node', () => {
  const hybrid = { mode: 'hybrid' as const, v2Path: null, paths: { memory: '/sys/fs/cgroup/memory/tsbox/c1', pids: '/sys/fs/cgroup/pids/tsbox/c1' } };
  const withCgroup = (options: RunOptions, extra: Partial<Parameters<typeof buildPlan>[2]> = {}): Plan => {
    const parsed = parseRunInput(['true'], options);
    return merged(buildPlan(parsed.command, parsed.options, {
      hostname: 'box', traceT0Ns: 0n, planVersion: PLAN_VERSION, idmap: false, seccomp: fakeCompiler, cgroup: hybrid, ...extra,
    }));
  };

  it('mounts everything on /sys/fs/cgroup last, after the volumes and masks, keeping its own order', () => {
    const p = withCgroup({ volumes: ['/etc:/data', '/etc:/sys/fs/cgroup/extra'], maskedPaths: ['/proc/keys', '/sys/fs/cgroup/memory/secret'] });
    const targets = p.mounts.map((m) => m.target);
    const firstCgroup = targets.indexOf('/sys/fs/cgroup');
    expect(targets.slice(firstCgroup)).toEqual([
      '/sys/fs/cgroup', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids', '/sys/fs/cgroup', '/sys/fs/cgroup/extra', '/sys/fs/cgroup/memory/secret',
    ]);
    // Everything else comes before it, in the order it had.
    for (const t of ['/proc', '/dev/null', '/etc/hosts', '/data', '/proc/keys']) expect(targets.indexOf(t)).toBeLessThan(firstCgroup);
    expect(targets.indexOf('/data')).toBeLessThan(targets.indexOf('/proc/keys'));
  });

  it('keeps a mount on a parent of /sys/fs/cgroup after the cgroup mounts it would hide', () => {
    const p = withCgroup({ tmpfs: ['/sys/fs'] });
    const targets = p.mounts.map((m) => m.target);
    expect(targets.indexOf('/sys/fs')).toBeGreaterThan(targets.indexOf('/sys/fs/cgroup/pids'));
  });

  it('carries phases 3 and 4 as decided: who writes the maps, how the child gets into its cgroup', () => {
    const maps = { setgroups: 'allow' as const, uidMap: '0 1879048192 65536\n', gidMap: '0 1879048192 65536\n' };
    const p = withCgroup({}, { cgroupPhase: { how: 'place', procs: ['/sys/fs/cgroup/pids/tsbox/a/cgroup.procs'], madeByNode: true }, maps: { writer: 'helper', maps } });
    expect(p.cgroup).toEqual({ how: 'place', procs: ['/sys/fs/cgroup/pids/tsbox/a/cgroup.procs'], madeByNode: true });
    expect(p.maps).toEqual({ writer: 'helper', maps });
    expect(plan().cgroup).toEqual({ how: 'none' });
    expect(plan().maps).toEqual({ writer: 'none' });
    expect(plan().network).toBe('loopback');
  });
});

const paths = (e: TsboxError) => e.issues.map((i) => i.path);

describe("/etc/hosts, /etc/resolv.conf and /dev/shm as Docker's flags make them (issue 19)", () => {
  const file = (mounts: PlanMount[], target: string) => {
    const m = mounts.find((x) => x.target === target);
    return m && m.type === 'file' ? m.contents : undefined;
  };

  it('adds --add-host lines, and --dns / --dns-search replace the host\'s nameservers and search domains', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-resolv-'));
    try {
      writeFileSync(join(dir, 'resolv.conf'), 'search corp.example\nnameserver 10.1.1.1\nnameserver 127.0.0.53\noptions edns0\n');
      const host = etcFiles('box', join(dir, 'resolv.conf'));
      expect(file(host, '/etc/resolv.conf')).toBe('search corp.example\nnameserver 10.1.1.1\noptions edns0\n');
      const mine = etcFiles('box', join(dir, 'resolv.conf'), { addHost: ['db:10.0.0.2', 'v6=[fd00::2]'], dns: ['9.9.9.9'], dnsSearch: ['a.example', 'b.example'] });
      expect(file(mine, '/etc/resolv.conf')).toBe('search a.example b.example\noptions edns0\nnameserver 9.9.9.9\n');
      expect(file(mine, '/etc/hosts')).toBe('127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\nfd00::2\tv6\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks the entries, and sizes /dev/shm', () => {
    expect(paths(rejection(() => parseRunInput(['true'], { addHost: ['nope'], dns: ['x.y'], dnsSearch: ['-bad'] }))).sort()).toEqual(['addHost[0]', 'dns[0]', 'dnsSearch[0]'].sort());
    expect(systemMounts(128 * 1024 * 1024).find((m) => m.target === '/dev/shm')).toMatchObject({ type: 'fs', data: 'mode=1777,size=134217728' });
    expect(parseRunInput(['true'], { shmSize: '1g' }).options.shmSize).toBe(1024 ** 3);
  });
});

/**
 * An OCI bundle's config.json, read (ts/oci/spec.ts) and turned into the
 * launch's options and plans (ts/oci/plan.ts): what each field becomes, and
 * the JSON path of every value that is wrong or not supported.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { kmemLimitEnforced } from '../../ts/cgroups/memory.js';
import { TsboxError } from '../../ts/errors.js';
import { ociContainer, supportedMountOptions } from '../../ts/oci/plan.js';
import { checkSpec, loadSpec, parseJsonExact, type OciSpec } from '../../ts/oci/spec.js';
import type { PlanContext } from '../../ts/runtime/plan.js';
import { RUNTIME_TOOLS_DEVICE_RULES, runtimeToolsConfig } from '../support/oci.js';

const bundle = mkdtempSync(join(tmpdir(), 'tsbox-unit-oci-'));
mkdirSync(join(bundle, 'rootfs'));
mkdirSync(join(bundle, 'data'));
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

/** runtime-tools' default config over bundle/rootfs. */
const base = () => runtimeToolsConfig('rootfs', ['/runtimetest', '--path=/']);

const fakeSeccomp = { compileSeccomp: () => Buffer.from('00', 'hex'), seccompProblems: () => [] };
const ctx: PlanContext = { hostname: 'x', traceT0Ns: 0n, planVersion: 5, idmap: false, seccomp: fakeSeccomp, control: '/run/x/control.sock', detach: true };

function container(spec: unknown) {
  return ociContainer(checkSpec(spec), bundle, 'config.json');
}

/** The problems a config gives, as `path: message`. */
function problems(spec: unknown): string[] {
  try {
    container(spec);
  } catch (err) {
    if (!(err instanceof TsboxError)) throw err;
    return ((err as TsboxError & { issues: { path: string; message: string }[] }).issues ?? []).map((i) => `${i.path}: ${i.message}`);
  }
  return [];
}

describe('config.json', () => {
  it('takes runtime-tools\' default config, and ignores properties it does not know', () => {
    expect(problems({ ...base(), unknown: 'unknown', annotations: { 'org.x': '' } })).toEqual([]);
  });

  it('refuses an ociVersion that is not SemVer, or not 1.x', () => {
    expect(problems({ ...base(), ociVersion: 'invalid' })).toEqual([expect.stringMatching(/^ociVersion: must be a SemVer 2.0.0 version/)]);
    expect(problems({ ...base(), ociVersion: '2.0.0' })).toEqual([expect.stringMatching(/^ociVersion: tsbox reads runtime-spec 1.x/)]);
  });

  it('names the JSON path of an unknown capability and an unknown or repeated rlimit', () => {
    const spec = base();
    spec.process.capabilities = { bounding: ['CAP_CHOWN', 'CAP_TEST'] };
    spec.process.rlimits = [{ type: 'RLIMIT_TEST', hard: 1, soft: 1 }, { type: 'RLIMIT_NOFILE', hard: 1, soft: 1 }, { type: 'RLIMIT_NOFILE', hard: 1, soft: 1 }];
    expect(problems(spec)).toEqual([
      'process.capabilities.bounding[1]: unknown capability "CAP_TEST" (names such as CAP_NET_ADMIN)',
      'process.rlimits[0].type: unknown rlimit "RLIMIT_TEST" (RLIMIT_NOFILE, RLIMIT_NPROC, ...)',
      'process.rlimits[2].type: RLIMIT_NOFILE is listed twice',
    ]);
  });

  it('refuses what it does not carry out, by path, rather than dropping it', () => {
    const spec = base();
    spec.linux = {
      ...spec.linux,
      namespaces: [{ type: 'mount', path: '/proc/1/ns/mnt' }, { type: 'mount' }, { type: 'time', path: '/proc/1/ns/time' }, { type: 'user', path: '/proc/1/ns/user' }, { type: 'network', path: 'relative' }],
      sysctl: { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '1', 'vm.swappiness': '1', 'net/../x': '1' },
      cgroupsPath: 'system.slice:tsbox:c1',
      devices: [{ path: '/dev/test1', type: 'c', major: 10, minor: 666 }],
      maskedPaths: ['relative'],
      resources: { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' }], memory: { limit: 1000 } },
    };
    spec.process.apparmorProfile = 'acme_secure_profile';
    spec.domainname = 'example.org';
    expect(problems(spec)).toEqual([
      'linux.namespaces[0].path: joining an existing mount namespace is not supported by tsbox',
      'linux.namespaces[1].type: "mount" is listed twice',
      'linux.namespaces[2].path: joining an existing time namespace is not supported by tsbox',
      'linux.namespaces[3].path: joining an existing user namespace is not supported by tsbox',
      'linux.namespaces[4].path: must be an absolute path',
      'domainname: needs a "uts" namespace of its own in linux.namespaces (the host\'s is not the container\'s to set)',
      'hostname: needs a "uts" namespace of its own in linux.namespaces (the host\'s name is not the container\'s to set)',
      'linux.sysctl["kernel.shmmax"]: is the ipc namespace\'s: the container needs its own (linux.namespaces)',
      expect.stringMatching(/^linux\.sysctl\["vm\.swappiness"\]: is not a parameter of a namespace/),
      'linux.sysctl["net/../x"]: is not a kernel parameter name (such as net.ipv4.ip_forward)',
      expect.stringMatching(/^linux\.cgroupsPath: is systemd's slice:prefix:name/),
      'linux.maskedPaths[0]: must be an absolute path',
      expect.stringMatching(/^linux\.resources\.devices\[1\]: allowing some devices needs a v1 device cgroup, and this host has no v1 devices hierarchy/),
      'process.apparmorProfile: AppArmor profiles are not supported by tsbox',
      expect.stringMatching(/^linux\.resources\.memory\.limit: 1000: must be at least 6m/),
    ]);
  });

  it('refuses a bundle without a mount namespace or a root (a process may be absent: start fails then)', () => {
    const spec = base();
    spec.linux.namespaces = [{ type: 'pid' }];
    expect(problems({ ...spec, process: undefined, root: undefined })).toEqual([
      expect.stringMatching(/^root: is required on Linux/),
      expect.stringMatching(/^linux\.namespaces: must include "mount"/),
      expect.stringMatching(/^hostname: needs a "uts" namespace/),
    ]);
  });

  it('keeps integers beyond 2^53 exact (seccomp arguments, RLIM_INFINITY)', () => {
    expect(parseJsonExact('{"a":18446744073709551615,"s":"18446744073709551615","b":[9007199254740993, 1.5e300]}')).toEqual({
      a: 18446744073709551615n,
      s: '18446744073709551615',
      b: [9007199254740993n, 1.5e300],
    });
  });

  it('names the file and the problem of a config.json that is not JSON', () => {
    const dir = mkdtempSync(join(bundle, 'bad-'));
    writeFileSync(join(dir, 'config.json'), '{"ociVersion": ');
    expect(() => loadSpec(dir)).toThrow(`config(${join(dir, 'config.json')}): is not JSON`);
    expect(() => loadSpec(join(dir, 'missing'))).toThrow(/read the bundle's config.json/);
  });
});

describe('the plans of a bundle', () => {
  it('tell the monitor which cgroup directories existed before (a joined cgroupsPath), so that it keeps them', () => {
    const kept = ['/sys/fs/cgroup/joined'];
    expect(container(base()).plans({ ...ctx, cgroupPhase: { how: 'cloneInto', dir: kept[0]!, procs: [`${kept[0]}/cgroup.procs`] }, cgroupKept: kept }).sandbox.cgroupKept).toEqual(kept);
    expect(container(base()).plans(ctx).sandbox.cgroupKept).toBeUndefined();
  });

  it('mounts what the config lists, in its order, with the default devices and /dev links over its /dev', () => {
    const { sandbox } = container(base()).plans(ctx);
    const targets = sandbox.mounts.map((m) => `${m.type}:${m.target}`);
    expect(targets).toEqual([
      'fs:/proc',
      'fs:/dev',
      'bind:/dev/null', 'bind:/dev/zero', 'bind:/dev/full', 'bind:/dev/random', 'bind:/dev/urandom', 'bind:/dev/tty',
      'symlink:/dev/ptmx', 'symlink:/dev/fd', 'symlink:/dev/stdin', 'symlink:/dev/stdout', 'symlink:/dev/stderr',
      'fs:/dev/pts',
      'fs:/dev/shm',
      'fs:/dev/mqueue',
      'fs:/sys',
    ]);
    const shm = sandbox.mounts.find((m) => m.target === '/dev/shm')!;
    // mount(2)'s source is the config's (mountinfo shows it), and the options are flags or data.
    expect(shm).toMatchObject({ type: 'fs', fstype: 'tmpfs', source: 'shm', data: 'mode=1777,size=65536k', nosuid: true, noexec: true, nodev: true });
    expect(sandbox.mounts.find((m) => m.target === '/dev')).toMatchObject({ data: 'mode=755,size=65536k', flags: 0x1000000 });
    expect(sandbox.mounts.find((m) => m.target === '/dev/pts')).toMatchObject({ data: 'newinstance,ptmxmode=0666,mode=0620,gid=5' });
    expect(sandbox).toMatchObject({ hostname: 'mrsdalloway', namespaces: ['pid', 'net', 'ipc', 'uts', 'mount'], init: false, detach: true });
  });

  it('without a user namespace, makes every filesystem the container can write nodev, but its own devices and devpts', () => {
    const spec = base();
    (spec.mounts as unknown[]).push({ destination: '/data', type: 'bind', source: 'data', options: ['rbind', 'rw'] });
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.rootfs).toEqual({ kind: 'path', path: join(bundle, 'rootfs'), mode: 'bind', idmap: false, nodev: true });
    const nodev = Object.fromEntries(sandbox.mounts.filter((m) => m.type === 'fs' || m.type === 'bind').map((m) => [m.target, m.nodev === true]));
    expect(nodev).toMatchObject({ '/dev': true, '/dev/shm': true, '/data': true, '/dev/pts': false, '/dev/null': false, '/dev/tty': false });
    expect(sandbox.mounts.find((m) => m.target === '/data')).toMatchObject({ type: 'bind', source: join(bundle, 'data'), recursive: true });
  });

  it('with a user namespace or an allow-all device rule, leaves nodev to the config', () => {
    const userns = base();
    userns.linux.namespaces = [...(userns.linux.namespaces as unknown[]), { type: 'user' }];
    expect(container(userns).plans(ctx).sandbox.rootfs).toMatchObject({ nodev: false });
    const all = base();
    all.linux.resources = { devices: [{ allow: true, access: 'rwm' }] };
    expect(container(all).plans(ctx).sandbox.mounts.find((m) => m.target === '/dev')).toMatchObject({ nodev: false });
  });

  it('joins a namespace that has a path, and makes the others', () => {
    const spec = base();
    spec.linux.namespaces = [{ type: 'pid', path: '/proc/7/ns/pid_for_children' }, { type: 'network', path: '/run/netns/x' }, { type: 'mount' }, { type: 'uts' }];
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.namespaces).toEqual(['pid', 'net', 'mount', 'uts']);
    expect(sandbox.join).toEqual([{ ns: 'pid', path: '/proc/7/ns/pid_for_children' }, { ns: 'net', path: '/run/netns/x' }]);
  });

  it('makes the devices listed, after the mounts, and writes the namespaced sysctls', () => {
    const spec = base();
    spec.linux.devices = [
      { path: '/dev/test1', type: 'c', major: 10, minor: 666, fileMode: 0o660, uid: 1, gid: 2 },
      { path: '/dev/test3', type: 'p' },
      { path: '/dev/test2', type: 'b' },
    ];
    expect(problems(spec)).toEqual(['linux.devices[2]: a block device needs major and minor']);
    spec.linux.devices.pop();
    spec.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.msgmax': '8192', 'net/ipv4/conf/lo.1/forwarding': '0' };
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.mounts.slice(-2)).toEqual([
      { target: '/dev/test1', type: 'device', node: 'char', major: 10, minor: 666, mode: 0o660, uid: 1, gid: 2 },
      { target: '/dev/test3', type: 'device', node: 'fifo', major: 0, minor: 0, mode: 0o666, uid: 0, gid: 0 },
    ]);
    expect(sandbox.sysctl).toEqual([
      { key: 'net.ipv4.ip_forward', value: '1' },
      { key: 'kernel.msgmax', value: '8192' },
      { key: 'net/ipv4/conf/lo.1/forwarding', value: '0' },
    ]);
  });

  it('with a v1 device cgroup: the rules in order after deny all, then the default devices; no nodev, and still no CAP_SYS_ADMIN', () => {
    const spec = base();
    // CAP_SYS_ADMIN could rewrite its own device cgroup (remounting its cgroupfs writable), cgroup namespace or not.
    for (const extra of [[], [{ type: 'cgroup' }]]) {
      const admin = base();
      admin.linux.namespaces = [...(admin.linux.namespaces as unknown[]), ...extra];
      admin.linux.resources = { devices: RUNTIME_TOOLS_DEVICE_RULES };
      admin.process.capabilities = { bounding: ['CAP_SYS_ADMIN'] };
      expect(() => ociContainer(checkSpec(admin), bundle, 'config.json', false, 'cgroup')).toThrow(/process\.capabilities\.bounding: has CAP_SYS_ADMIN, which outside a user namespace could open devices/);
    }
    spec.linux.resources = {
      devices: [...RUNTIME_TOOLS_DEVICE_RULES, { allow: false, type: 'c', minor: 3, access: 'w' }],
    };
    const c = ociContainer(checkSpec(spec), bundle, 'config.json', false, 'cgroup');
    expect(c.deviceRules).toEqual([
      // tsbox's deny all, then the config's own.
      { file: 'devices.deny', value: 'a' },
      { file: 'devices.deny', value: 'a' },
      { file: 'devices.allow', value: 'c 10:229 rwm' },
      { file: 'devices.allow', value: 'b 8:20 rw' },
      { file: 'devices.allow', value: 'b 10:200 r' },
      { file: 'devices.deny', value: 'c *:3 w' },
      ...['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 136:* rwm'].map((value) => ({ file: 'devices.allow', value })),
    ]);
    expect(c.limited).toBe(true);
    expect(c.deviceGuard).toBe(true);
    expect(c.plans(ctx).sandbox.rootfs).toMatchObject({ nodev: false });
    // Allow all at the end: nothing after it.
    spec.linux.resources.devices.push({ allow: true, access: 'rwm' });
    expect(ociContainer(checkSpec(spec), bundle, 'config.json', false, 'cgroup').deviceRules!.at(-1)).toEqual({ file: 'devices.allow', value: 'a' });
    const bad = base();
    bad.linux.resources = {
      devices: [
        { allow: true, type: 'u', access: 'rwm' },
        { allow: true, type: 'c', access: 'rx' },
        { allow: true, type: 'c', major: 1.5, access: 'r' },
        // The kernel would take these two for every device, rwm.
        { allow: true, type: 'a', major: 1, minor: 3, access: 'r' },
        { allow: true, type: 'a', access: 'm' },
      ],
    };
    expect(() => ociContainer(checkSpec(bad), bundle, 'config.json', false, 'cgroup')).toThrow(TsboxError);
    try {
      ociContainer(checkSpec(bad), bundle, 'config.json', false, 'cgroup');
    } catch (err) {
      expect((err as TsboxError).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
        'linux.resources.devices[0].type: "u" is not a device type of a device rule (a, c or b)',
        'linux.resources.devices[1].access: "rx" is not a device access (r, w and m, each at most once)',
        'linux.resources.devices[2].major: 1.5 is not a device number (or null, or -1, for any)',
        'linux.resources.devices[3]: type "a" is every device with every access (r, w and m): leave out major and minor, and give access "rwm", or name the device type (c or b)',
        'linux.resources.devices[4]: type "a" is every device with every access (r, w and m): leave out major and minor, and give access "rwm", or name the device type (c or b)',
      ]);
    }
  });

  it('on pure cgroup v2 as root (the eBPF device program): the same rules as a v1 device cgroup, no nodev, and still no CAP_SYS_ADMIN', () => {
    const spec = base();
    spec.linux.resources = { devices: [...RUNTIME_TOOLS_DEVICE_RULES, { allow: false, type: 'c', minor: 3, access: 'w' }] };
    const v1 = ociContainer(checkSpec(spec), bundle, 'config.json', false, 'cgroup');
    const v2 = ociContainer(checkSpec(spec), bundle, 'config.json', false, 'ebpf');
    expect(v2.deviceRules).toEqual(v1.deviceRules);
    expect(v2.deviceRules!.slice(0, 3)).toEqual([
      { file: 'devices.deny', value: 'a' },
      { file: 'devices.deny', value: 'a' },
      { file: 'devices.allow', value: 'c 10:229 rwm' },
    ]);
    expect(v2.limited).toBe(true);
    expect(v2.deviceGuard).toBe(true);
    const { sandbox } = v2.plans(ctx);
    expect(sandbox.rootfs).toMatchObject({ nodev: false });
    expect(sandbox.mounts.find((m) => m.target === '/dev')).toMatchObject({ nodev: false });
    // CAP_SYS_ADMIN is the initial user namespace's here: it could detach the program.
    const admin = base();
    admin.linux.resources = { devices: RUNTIME_TOOLS_DEVICE_RULES };
    admin.process.capabilities = { bounding: ['CAP_SYS_ADMIN'] };
    expect(() => ociContainer(checkSpec(admin), bundle, 'config.json', false, 'ebpf')).toThrow(/process\.capabilities\.bounding: has CAP_SYS_ADMIN, which outside a user namespace could open devices the device rules deny \(by remounting the container's filesystems, by rewriting or leaving its device cgroup, or by detaching its eBPF device program\)/);
  });

  it('allow all with denials after it still denies devices: CAP_SYS_ADMIN outside a user namespace stays refused', () => {
    for (const control of ['cgroup', 'ebpf'] as const) {
      const spec = base();
      spec.process.capabilities = { bounding: ['CAP_SYS_ADMIN'] };
      spec.linux.resources = { devices: [{ allow: true, access: 'rwm' }, { allow: false, type: 'c', major: 1, minor: 1, access: 'rwm' }] };
      expect(() => ociContainer(checkSpec(spec), bundle, 'config.json', false, control)).toThrow(/process\.capabilities\.bounding: has CAP_SYS_ADMIN/);
      // Allow all again after the denial: every device.
      spec.linux.resources.devices.push({ allow: true, access: 'rwm' });
      const c = ociContainer(checkSpec(spec), bundle, 'config.json', false, control);
      expect(c.deviceGuard).toBe(false);
      expect(c.deviceRules!.at(-1)).toEqual({ file: 'devices.allow', value: 'a' });
    }
  });

  it('as an ordinary user (no device cgroup, no device program): rules for some devices refused, saying why; deny all and allow all still work', () => {
    const spec = base();
    spec.linux.resources = { devices: RUNTIME_TOOLS_DEVICE_RULES };
    const refused = (control: 'rootless' | 'none') => {
      try {
        ociContainer(checkSpec(spec), bundle, 'config.json', false, control);
      } catch (err) {
        return (err as TsboxError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      throw new Error('not refused');
    };
    expect(refused('rootless')).toEqual([
      "linux.resources.devices[1]: allowing some devices needs a device cgroup (cgroup v1) or an eBPF device program (cgroup v2), which tsbox has as root only: writing a device cgroup's rules and loading a device program need CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace (the default devices are there without a rule)",
      expect.stringMatching(/^linux\.resources\.devices\[2\]: allowing some devices needs a device cgroup \(cgroup v1\) or an eBPF device program/),
      expect.stringMatching(/^linux\.resources\.devices\[3\]: allowing some devices needs/),
    ]);
    expect(refused('none')[0]).toBe('linux.resources.devices[1]: allowing some devices needs a v1 device cgroup, and this host has no v1 devices hierarchy (tsbox uses an eBPF device program instead on pure cgroup v2 hosts only) (the default devices are there without a rule)');
    spec.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
    const c = ociContainer(checkSpec(spec), bundle, 'config.json', false, 'rootless');
    expect(c.deviceRules).toBeNull();
    expect(c.plans(ctx).sandbox.rootfs).toMatchObject({ nodev: true });
  });

  it('refuses CAP_SYS_ADMIN (or every capability) without a user namespace while devices are denied: it could remount them dev', () => {
    const admin = base();
    admin.process.capabilities = { bounding: ['CAP_SYS_ADMIN'] };
    expect(problems(admin)).toEqual([expect.stringMatching(/^process\.capabilities\.bounding: has CAP_SYS_ADMIN, which outside a user namespace could open devices the device rules deny/)]);
    const all = base();
    delete all.process.capabilities;
    expect(problems(all)).toEqual([expect.stringMatching(/^process\.capabilities: leaves every capability, CAP_SYS_ADMIN included/)]);
    // With a user namespace, or every device allowed, there is nothing to hold.
    admin.linux.namespaces = [...(admin.linux.namespaces as unknown[]), { type: 'user' }];
    expect(problems(admin)).toEqual([]);
    all.linux.resources = { devices: [{ allow: true, access: 'rwm' }] };
    expect(problems(all)).toEqual([]);
  });

  it('takes a joined namespace that is the host\'s own for none: no sysctl or hostname goes to the host', () => {
    const spec = base();
    spec.linux.namespaces = [{ type: 'mount' }, { type: 'uts', path: '/proc/self/ns/uts' }, { type: 'network', path: '/proc/self/ns/net' }];
    spec.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
    expect(problems(spec)).toEqual([
      expect.stringMatching(/^hostname: needs a "uts" namespace of its own/),
      'linux.sysctl["net.ipv4.ip_forward"]: is the net namespace\'s: the container needs its own (linux.namespaces)',
    ]);
  });

  it('makes a time namespace with the clocks\' offsets; offsets need one', () => {
    const spec = base();
    spec.linux.timeOffsets = { boottime: { secs: 86400, nanosecs: 5 } };
    expect(problems(spec)).toEqual(['linux.timeOffsets: needs a "time" namespace in linux.namespaces']);
    spec.linux.namespaces.push({ type: 'time' });
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.time).toEqual({ monotonic: null, boottime: { secs: 86400, nanosecs: 5 } });
    expect(sandbox.namespaces).not.toContain('time');
  });

  it('refuses a bind of a device node while devices are denied', () => {
    const spec = base();
    (spec.mounts as unknown[]).push({ destination: '/dev/kmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] });
    expect(problems(spec)).toEqual(['mounts[6].source: /dev/kmsg is a device node, which the device rules (linux.resources.devices) deny']);
  });

  it('refuses mount options it does not carry out, by path', () => {
    const spec = base();
    (spec.mounts as unknown[]).push(
      { destination: '/x', type: 'tmpfs', source: 'tmpfs', options: ['rshared', 'tmpcopyup'] },
      { destination: '/y', type: 'bind', source: 'data', options: ['bind', 'size=1k', 'sync'] },
      { destination: '/z', type: 'bind', source: 'data', options: ['rbind', 'rrw'] },
    );
    expect(problems(spec)).toEqual([
      'mounts[6].options[1]: "tmpcopyup" is not supported by tsbox yet',
      'mounts[7].options[1]: "size=1k" is not an option of a bind mount',
      'mounts[7].options[2]: "sync" is a filesystem\'s option, which a bind mount cannot set (it shares the source\'s filesystem)',
      'mounts[8].options[1]: "rrw" would clear the attribute on every mount of the rbind, which tsbox does not do: leave it out, or use "rw"',
    ]);
  });

  it('linux.memoryPolicy: the mode, its flags and the nodes by number, for the container\'s process; refused by path when it cannot be one', () => {
    const spec = base();
    spec.linux.memoryPolicy = { mode: 'MPOL_INTERLEAVE', nodes: '0-2,5', flags: ['MPOL_F_STATIC_NODES'] };
    expect(container(spec).plans(ctx).process.memoryPolicy).toEqual({ mode: 3, flags: 1 << 15, nodes: [0, 1, 2, 5] });
    for (const [policy, message] of [
      [{ mode: 'MPOL_SOMETIMES' }, /^linux\.memoryPolicy\.mode: "MPOL_SOMETIMES" is not a memory policy/],
      [{ mode: 'MPOL_BIND' }, /^linux\.memoryPolicy\.nodes: MPOL_BIND needs the nodes it applies to/],
      [{ mode: 'MPOL_LOCAL', nodes: '0' }, /^linux\.memoryPolicy\.nodes: MPOL_LOCAL takes no nodes/],
      [{ mode: 'MPOL_BIND', nodes: '3-1' }, /^linux\.memoryPolicy\.nodes: "3-1" is not a range of memory nodes/],
      [{ mode: 'MPOL_BIND', nodes: '0', flags: ['MPOL_F_SOON'] }, /^linux\.memoryPolicy\.flags\[0\]: "MPOL_F_SOON" is not a memory policy flag/],
    ] as const) {
      const bad = base();
      bad.linux.memoryPolicy = policy;
      expect(problems(bad)).toEqual([expect.stringMatching(message)]);
    }
  });

  it('idmap and ridmap: a bind idmapped by the container\'s own user namespace; refused without one, on a filesystem, or with other maps', () => {
    const spec = base();
    spec.linux.namespaces.push({ type: 'user' });
    spec.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    (spec.mounts as unknown[]).push(
      { destination: '/a', type: 'bind', source: 'data', options: ['bind', 'idmap'] },
      { destination: '/b', type: 'bind', source: 'data', options: ['rbind', 'ridmap'], uidMappings: spec.linux.uidMappings, gidMappings: spec.linux.gidMappings },
    );
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.mounts.filter((m) => m.type === 'bind' && m.idmap).map((m) => m.target)).toEqual(['/a', '/b']);

    const bad = base();
    (bad.mounts as unknown[]).push({ destination: '/a', type: 'bind', source: 'data', options: ['bind', 'idmap'] });
    expect(problems(bad)).toEqual([expect.stringMatching(/^mounts\[6\]\.options: an idmapped mount shifts ids by the container's own user namespace/)]);
    const other = base();
    other.linux.namespaces.push({ type: 'user' });
    other.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    other.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    (other.mounts as unknown[]).push(
      { destination: '/a', type: 'bind', source: 'data', options: ['bind', 'idmap'], uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] },
      { destination: '/b', type: 'tmpfs', source: 'tmpfs', options: ['idmap'] },
    );
    expect(problems(other)).toEqual([
      expect.stringMatching(/^mounts\[6\]\.uidMappings: an idmapped mount with maps other than the container's/),
      'mounts[7].options: an idmapped mount is a bind mount: add "bind" or "rbind"',
    ]);
  });

  it('takes every mount option the features document lists: on a bind, or (a filesystem\'s own) on a tmpfs', () => {
    const options = supportedMountOptions();
    expect(options).toEqual(expect.arrayContaining(['rshared', 'rro', 'nosymfollow', 'idmap', 'ridmap', 'rbind', 'strictatime']));
    for (const o of options) {
      const spec = base();
      spec.linux.namespaces.push({ type: 'user' });
      spec.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      spec.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      const fsOnly = ['sync', 'dirsync', 'silent', 'iversion', 'lazytime'].includes(o);
      (spec.mounts as unknown[]).push(fsOnly ? { destination: '/x', type: 'tmpfs', source: 'tmpfs', options: [o] } : { destination: '/x', type: 'bind', source: 'data', options: ['bind', o] });
      expect(problems(spec), o).toEqual([]);
    }
  });

  it('carries propagation, the recursive attributes, atime and nosymfollow options on binds and filesystems', () => {
    const spec = base();
    (spec.mounts as unknown[]).push(
      { destination: '/x', type: 'tmpfs', source: 'tmpfs', options: ['rshared', 'nosymfollow', 'rnoexec'] },
      { destination: '/y', type: 'bind', source: 'data', options: ['rbind', 'rro', 'noatime', 'nodiratime', 'runbindable'] },
      { destination: '/w', type: 'bind', source: 'data', options: ['bind', 'rsuid', 'slave', 'strictatime'] },
    );
    const { sandbox } = container(spec).plans(ctx);
    expect(sandbox.mounts.find((m) => m.target === '/x')).toMatchObject({ type: 'fs', noexec: true, flags: 0x100, propagation: { kind: 'shared', recursive: true } });
    expect(sandbox.mounts.find((m) => m.target === '/y')).toMatchObject({ type: 'bind', recursive: true, readonly: true, flags: 0x400 | 0x800, propagation: { kind: 'unbindable', recursive: true } });
    expect(sandbox.mounts.find((m) => m.target === '/w')).toMatchObject({ type: 'bind', recursive: false, nosuid: false, flags: 0x1000000, propagation: { kind: 'slave', recursive: false } });
  });

  it('runs the process as given: argv, env, ids, the five capability sets, rlimits, umask', () => {
    const spec = base();
    spec.process = {
      ...spec.process,
      user: { uid: 10, gid: 10, umask: 2, additionalGids: [5] },
      noNewPrivileges: true,
      capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], permitted: ['CAP_KILL'], inheritable: [], effective: ['CAP_KILL'], ambient: ['CAP_KILL'] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4000, soft: 3000 }, { type: 'RLIMIT_CORE', hard: 18446744073709551615n, soft: 0 }],
      oomScoreAdj: 500,
    };
    const c = container(spec);
    expect(c.oomScoreAdj).toBe(500);
    expect(c.plans(ctx).process).toEqual({
      argv: ['/runtimetest', '--path=/'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      user: { user: '10', group: '10', additionalGroups: ['5'] },
      capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: [], ambient: ['CAP_KILL'] },
      noNewPrivileges: true,
      rlimits: [{ name: 'nofile', soft: 3000, hard: 4000 }, { name: 'core', soft: 0, hard: null }],
      seccomp: null,
      tty: null,
      trace: false,
      umask: 2,
      personality: null,
      ioPriority: null,
      scheduler: null,
      startContainerHooks: null,
      memoryPolicy: null,
      seccompAgent: null,
    });
  });

  it('sets the domain name, personality, I/O priority and scheduler as given, by number', () => {
    const spec = base();
    spec.domainname = 'example.org';
    spec.linux.personality = { domain: 'LINUX32' };
    spec.process.ioPriority = { class: 'IOPRIO_CLASS_IDLE', priority: 4 };
    spec.process.scheduler = { policy: 'SCHED_BATCH', nice: 5, flags: ['SCHED_FLAG_RESET_ON_FORK'] };
    const { sandbox, process } = container(spec).plans(ctx);
    expect(sandbox.domainname).toBe('example.org');
    expect(process).toMatchObject({ personality: 8, ioPriority: { class: 3, priority: 4 }, scheduler: { policy: 3, nice: 5, flags: 1, priority: 0 } });
    spec.process.scheduler.flags = ['SCHED_FLAG_UTIL_CLAMP_MIN'];
    expect(problems(spec)).toEqual([expect.stringMatching(/^process\.scheduler\.flags\[0\]: "SCHED_FLAG_UTIL_CLAMP_MIN" is not a flag tsbox can set/)]);
  });

  it('takes -1 for a device rule\'s major and minor as every number, as null (deny all written either way)', () => {
    const spec = base();
    spec.linux.resources = { devices: [{ allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' }] };
    expect(problems(spec)).toEqual([]);
  });

  it('refuses memory.useHierarchy false: the kernel accounts hierarchically', () => {
    const spec = base();
    spec.linux.resources = { memory: { useHierarchy: false } };
    expect(problems(spec)).toEqual(['linux.resources.memory.useHierarchy: false is not supported: the kernel accounts memory hierarchically']);
  });

  it('maps the rest of linux.resources as runtime-tools\' cgroup tests give them: v1 memory files, huge pages, network, unified, block devices by number', () => {
    const spec = base();
    spec.linux.resources = {
      memory: { limit: 50593792, reservation: 50593792, swap: 50593792, kernelTCP: 50593792, swappiness: 10, disableOOMKiller: true },
      hugepageLimits: [{ pageSize: '2MB', limit: 2 * 1024 ** 3 }],
      network: { classID: 255, priorities: [{ name: 'lo', priority: 10 }] },
      unified: { 'memory.high': '64M' },
      blockIO: { weight: 500, weightDevice: [{ major: 8, minor: 0, weight: 500 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 102400 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 0 }] },
    };
    expect(container(spec).options).toMatchObject({
      memory: 50593792,
      memoryReservation: 50593792,
      memorySwap: 50593792,
      kernelMemoryTCP: 50593792,
      memorySwappiness: 10,
      oomKillDisable: true,
      hugepageLimits: [{ pageSize: '2MB', limit: 2 * 1024 ** 3 }],
      networkClassId: 255,
      networkPriorities: [{ name: 'lo', priority: 10 }],
      unified: { 'memory.high': '64M' },
      blkioWeight: 500,
      blkioWeightDevice: [{ major: 8, minor: 0, weight: 500 }],
      deviceReadBps: [{ major: 8, minor: 0, rate: 102400 }],
    });
    // A rate of 0 is no limit.
    expect(container(spec).options.deviceWriteIops).toBeUndefined();
  });

  it('refuses, by path, the resources the kernel no longer has and what tsbox cannot check here', () => {
    const spec = base();
    spec.linux.resources = { memory: { swappiness: 101 }, blockIO: { leafWeight: 300, weightDevice: [{ major: 8, minor: 0, leafWeight: 300 }] }, rdma: { mlx4_0: { hcaHandles: 1 } }, hugepageLimits: [{ pageSize: '3 MB', limit: 1 }], unified: { 'cgroup.procs': '1' } };
    spec.linux.resources.memory = { ...spec.linux.resources.memory, kernel: 50593792 };
    const kernel = kmemLimitEnforced() ? [] : [expect.stringMatching(/^linux\.resources\.memory\.kernel: this kernel \(.*\) ignores kernel memory limits \(6\.1 made/)];
    expect(problems(spec)).toEqual([
      ...kernel,
      'linux.resources.memory.swappiness: 101 is not a swappiness (0 to 100)',
      expect.stringMatching(/^linux\.resources\.blockIO\.leafWeight: the kernel has had no leaf weight since 5\.0/),
      expect.stringMatching(/^linux\.resources\.blockIO\.weightDevice\[0\]\.leafWeight: the kernel has had no leaf weight/),
      expect.stringMatching(/^linux\.resources\.rdma: /),
      expect.stringMatching(/^linux\.resources\.hugepageLimits.*must be a page size as the kernel names it/),
      expect.stringMatching(/^linux\.resources\.unified.*cgroup\.procs.*is a file the runtime manages/),
    ]);
  });

  it('maps linux.resources onto the limits, and the id mappings onto the maps', () => {
    const spec: OciSpec | Record<string, unknown> = base();
    const linux = (spec as ReturnType<typeof base>).linux;
    linux.namespaces = [...(linux.namespaces as unknown[]), { type: 'user' }];
    linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 2000 }];
    linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 3000 }];
    linux.resources = { memory: { limit: 64 << 20, swap: -1 }, cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' }, pids: { limit: 100 }, blockIO: { weight: 500 } };
    const c = container(spec);
    expect(c.options).toMatchObject({
      memory: 64 << 20,
      memorySwap: -1,
      cpuShares: 512,
      cpuQuota: 50000,
      cpuPeriod: 100000,
      cpusetCpus: '0',
      pidsLimit: 100,
      blkioWeight: 500,
      userns: 'private',
      uidMap: [{ containerId: 0, hostId: 1000, size: 2000 }],
      gidMap: [{ containerId: 0, hostId: 1000, size: 3000 }],
      detach: true,
      stdio: 'inherit',
      init: false,
    });
    expect(c.limited).toBe(true);
  });
});

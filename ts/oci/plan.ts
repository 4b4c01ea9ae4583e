/**
 * What an OCI bundle's config.json means for tsbox: the options the launch
 * reads (ids, cgroup limits, detach) and the two plans, built from the
 * config's own mounts, namespaces and process rather than tsbox's defaults.
 * Each field is either carried out or refused with its JSON path; none is
 * dropped (README, "As an OCI runtime", has the table).
 */
import { lstatSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { posix, resolve } from 'node:path';

import { ALL_CAPABILITIES } from '../config/capabilities.js';
import { parseRunInput, RLIMIT_NAMES, type ResolvedOptions, type RunOptions } from '../config/schema.js';
import { notifyRule, seccompProgram, type OciSeccompProfile, type SeccompCompiler } from '../config/seccomp.js';
import { kmemLimitEnforced } from '../cgroups/memory.js';
import type { DeviceRuleWrite } from '../cgroups/index.js';
import { TsboxError } from '../errors.js';
import { inUserNamespace } from '../state-root.js';
import type { JoinedNamespace, MemoryPolicy, Namespace, ProcessPlan, SandboxPlan, Sysctl, TimeOffsets } from '../generated/wire.js';
import { cgroupBinds, cgroupMounts, cgroupMountsLast, defaultStorageSize, DEVICES, isHostRoot, type PlanContext, type PlanMount } from '../runtime/plan.js';
import { specError, type HookName, type OciHook, type OciMount, type OciProcess, type OciResources, type OciSpec, type SpecProblem } from './spec.js';

/** <linux/fs.h> MS_* flags an OCI mount option may set on a fresh filesystem. */
const MS = {
  SYNCHRONOUS: 0x10,
  DIRSYNC: 0x80,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  SILENT: 0x8000,
  RELATIME: 0x200000,
  I_VERSION: 0x800000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
  NOSYMFOLLOW: 0x100,
} as const;

/** Options that set a flag, and those that mean the kernel's default (nothing to do). */
const FLAG_OPTIONS: Record<string, number> = {
  sync: MS.SYNCHRONOUS,
  dirsync: MS.DIRSYNC,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  silent: MS.SILENT,
  relatime: MS.RELATIME,
  iversion: MS.I_VERSION,
  strictatime: MS.STRICTATIME,
  lazytime: MS.LAZYTIME,
  nosymfollow: MS.NOSYMFOLLOW,
};
/** The flags a bind mount takes too (as mount attributes); the others are a filesystem's. */
const BIND_FLAGS = new Set(['noatime', 'nodiratime', 'relatime', 'strictatime', 'nosymfollow']);
const DEFAULT_OPTIONS = new Set(['async', 'atime', 'diratime', 'norelatime', 'nostrictatime', 'nolazytime', 'noiversion', 'loud', 'defaults', 'nomand', 'symfollow']);
/** Propagation options: the mount's own, set after the root's (rootfsPropagation). */
type PropagationOption = { kind: 'private' | 'slave' | 'shared' | 'unbindable'; recursive: boolean };
const PROPAGATION: Record<string, PropagationOption> = Object.fromEntries(
  (['private', 'slave', 'shared', 'unbindable'] as const).flatMap((kind): [string, PropagationOption][] => [
    [kind, { kind, recursive: false }],
    [`r${kind}`, { kind, recursive: true }],
  ]),
);
/**
 * The recursive attribute options (mount_setattr's AT_RECURSIVE): tsbox sets
 * a bind's attributes on every mount of an rbind anyway, so each is its plain
 * option; those that clear an attribute would have to clear it below too,
 * and are refused on an rbind.
 */
const RECURSIVE_SETS: Record<string, string> = { rro: 'ro', rnosuid: 'nosuid', rnodev: 'nodev', rnoexec: 'noexec', rnoatime: 'noatime', rnodiratime: 'nodiratime', rrelatime: 'relatime', rstrictatime: 'strictatime', rnosymfollow: 'nosymfollow' };
const RECURSIVE_CLEARS: Record<string, string> = { rrw: 'rw', rsuid: 'suid', rdev: 'dev', rexec: 'exec', ratime: 'atime', rdiratime: 'diratime', rnorelatime: 'norelatime', rnostrictatime: 'nostrictatime', rsymfollow: 'symfollow' };
/** runtime-spec options tsbox does not carry out yet: refused, never dropped. */
const UNSUPPORTED_OPTIONS = new Set(['remount', 'mand', 'tmpcopyup']);

/** Every mount option tsbox carries out (the features document's mountOptions). */
export function supportedMountOptions(): string[] {
  const own = ['bind', 'rbind', 'ro', 'rw', 'nosuid', 'suid', 'nodev', 'dev', 'noexec', 'exec', 'idmap', 'ridmap'];
  return [...new Set([...own, ...DEFAULT_OPTIONS, ...Object.keys(FLAG_OPTIONS), ...Object.keys(PROPAGATION), ...Object.keys(RECURSIVE_SETS), ...Object.keys(RECURSIVE_CLEARS)])].sort();
}

/** What `create` needs from a bundle besides the plans. */
export interface OciContainer {
  /** The options the launch reads: ids, limits, detach, the container's name. */
  options: ResolvedOptions;
  /** The two plans, once the launch knows the cgroup and the id maps. */
  plans: (ctx: PlanContext) => { sandbox: SandboxPlan; process: ProcessPlan };
  /** The command (`process.args`), as the state records it. */
  command: string[];
  /** linux.seccomp's agent, when a rule is SCMP_ACT_NOTIFY: its socket and listenerMetadata. */
  seccompAgent: { path: string; metadata: string } | null;
  hooks: Partial<Record<HookName, OciHook[]>>;
  annotations: Record<string, string>;
  ociVersion: string;
  /** Written to /proc/PID/oom_score_adj of the created container, when set. */
  oomScoreAdj: number | null;
  /** linux.resources sets a limit: the container needs a cgroup, even rootless. */
  limited: boolean;
  /** linux.cgroupsPath, when given. */
  cgroupsPath: string | undefined;
  /** process.terminal: the container has a console, whose master create hands on. */
  terminal: boolean;
  /**
   * The config has a process. Without one the container can be created
   * (hooks, state, kill, delete) but `start` fails, as the runtime-spec says.
   */
  startable: boolean;
  /**
   * The device rules in order, as the writes of a v1 device cgroup (on a
   * pure v2 host, the rules of the eBPF device program on the container's
   * cgroup); null without either (see deviceGuard).
   */
  deviceRules: DeviceRuleWrite[] | null;
  /**
   * Devices are denied outside a user namespace: CAP_SYS_ADMIN could undo
   * the rule (remount nodev filesystems, rewrite or leave the device
   * cgroup, detach the device program or leave its cgroup), so no process
   * with it may run in this container, exec'd ones included.
   */
  deviceGuard: boolean;
}

/**
 * What carries out linux.resources.devices on this host (ts/oci/runtime.ts
 * decides): the container's own v1 device cgroup (v1 and hybrid hosts with
 * a devices hierarchy), or an eBPF device program attached to its cgroup
 * (pure v2, which has no device controller), both as root only; else
 * nothing, for an ordinary user (`rootless`: a device cgroup's rules and
 * loading a device program need CAP_SYS_ADMIN, or CAP_BPF, in the initial
 * user namespace) or for root on a host with neither (`none`).
 */
export type DeviceControl = 'cgroup' | 'ebpf' | 'rootless' | 'none';

const NS: Record<string, Namespace> = { pid: 'pid', network: 'net', mount: 'mount', ipc: 'ipc', uts: 'uts', user: 'user', cgroup: 'cgroup' };

/** RLIM_INFINITY, and anything JSON gave above it. */
const RLIM_INFINITY = 2n ** 64n - 1n;

/** Turns a checked config.json into what `create` launches; throws every problem with its JSON path. */
export function ociContainer(spec: OciSpec, bundle: string, file: string, trace = false, deviceControl: DeviceControl = 'none'): OciContainer {
  const problems: SpecProblem[] = [];
  const refuse = (path: string, message: string) => problems.push({ path, message });
  const unsupported = (path: string, what = 'is not supported by tsbox yet') => refuse(path, what);
  const proc = spec.process;
  const linux = spec.linux ?? {};

  if (!spec.root) refuse('root', 'is required on Linux: the container needs a root filesystem');

  // Namespaces: each new one tsbox knows; joining and the time namespace are not there yet.
  const namespaces: Namespace[] = [];
  const join: JoinedNamespace[] = [];
  const hosts = new Set<Namespace>();
  // Set in the callback below: declared wide, so TypeScript does not narrow it to null.
  let time = null as TimeOffsets | null;
  (linux.namespaces ?? []).forEach((n, i) => {
    const at = `linux.namespaces[${i}]`;
    if (n.type === 'time') {
      if (time !== null) return refuse(`${at}.type`, '"time" is listed twice');
      if (n.path) return unsupported(`${at}.path`, 'joining an existing time namespace is not supported by tsbox');
      time = { monotonic: null, boottime: null };
      return;
    }
    const ns = NS[n.type]!;
    if (namespaces.includes(ns)) return refuse(`${at}.type`, `"${n.type}" is listed twice`);
    namespaces.push(ns);
    if (!n.path) return;
    if (!n.path.startsWith('/')) return refuse(`${at}.path`, 'must be an absolute path');
    // Entering another container's mount namespace would pivot the root of
    // every process in it; a user namespace decides the ids of all the rest.
    if (ns === 'mount' || ns === 'user') return unsupported(`${at}.path`, `joining an existing ${n.type} namespace is not supported by tsbox`);
    join.push({ ns, path: n.path });
    // The host's own (tsbox's) is no namespace of the container's: its
    // name, sysctls and loopback are the host's, and are not set.
    if (isOwnNamespace(n.path, ns)) hosts.add(ns);
  });
  const own = namespaces.filter((ns) => !hosts.has(ns));
  if (!namespaces.includes('mount')) refuse('linux.namespaces', 'must include "mount": tsbox builds every container in a mount namespace of its own');
  const userns = namespaces.includes('user');
  if (!userns && (linux.uidMappings?.length || linux.gidMappings?.length)) refuse(linux.uidMappings?.length ? 'linux.uidMappings' : 'linux.gidMappings', 'needs a "user" namespace in linux.namespaces');
  if (spec.domainname && !own.includes('uts')) refuse('domainname', 'needs a "uts" namespace of its own in linux.namespaces (the host\'s is not the container\'s to set)');
  if (linux.personality?.flags?.length) refuse('linux.personality.flags', 'the runtime-spec defines no flags yet');
  if (spec.hostname && !own.includes('uts')) refuse('hostname', 'needs a "uts" namespace of its own in linux.namespaces (the host\'s name is not the container\'s to set)');

  for (const key of ['netDevices', 'intelRdt'] as const) if (linux[key] != null) unsupported(`linux.${key}`);
  const memoryPolicy = linux.memoryPolicy ? ociMemoryPolicy(linux.memoryPolicy, refuse) : null;
  if (linux.timeOffsets) {
    if (time === null) refuse('linux.timeOffsets', 'needs a "time" namespace in linux.namespaces');
    else for (const [clock, o] of Object.entries(linux.timeOffsets)) time[clock as keyof TimeOffsets] = { secs: o.secs ?? 0, nanosecs: o.nanosecs ?? 0 };
  }
  const devices = ociDevices(linux.devices ?? [], refuse);
  const sysctl = ociSysctls(linux.sysctl ?? {}, own, refuse);
  if (linux.mountLabel) unsupported('linux.mountLabel', 'SELinux labels are not supported by tsbox');
  const cgroupsPath = linux.cgroupsPath || undefined;
  if (cgroupsPath !== undefined) {
    if (/^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath)) refuse('linux.cgroupsPath', "is systemd's slice:prefix:name, which is for the systemd cgroup driver: pass --systemd-cgroup (on a host whose PID 1 is systemd), or give a cgroupfs path (/machine/c1)");
    else if (cgroupsPath.includes('\0') || cgroupsPath.split('/').some((p) => p === '..' || p === '.')) refuse('linux.cgroupsPath', 'must be a cgroup path without . or .. (absolute from the hierarchy\'s root, or relative to tsbox\'s place)');
  }
  for (const key of ['maskedPaths', 'readonlyPaths'] as const) {
    (linux[key] ?? []).forEach((p, i) => {
      if (!p.startsWith('/')) refuse(`linux.${key}[${i}]`, 'must be an absolute path');
    });
  }

  const limits = ociLimits(spec.linux?.resources, refuse);
  const devicePolicyOf = devicePolicy(spec, refuse, deviceControl);
  // Outside a user namespace a process with CAP_MKNOD could make and open
  // device nodes the device rules deny. A device cgroup (v1) or the device
  // program (v2) stops that: the kernel asks it at every open; without
  // either, every filesystem it gets (its root, tmpfs, binds) is nodev, and
  // only tsbox's own device binds are not.
  const nodev = !userns && !devicePolicyOf.allowAll && devicePolicyOf.writes === null;
  // CAP_SYS_ADMIN outside a user namespace could undo any of them: remount
  // a filesystem dev; or remount its cgroupfs writable and allow itself
  // every device in its own device cgroup (its parent allows all); or, the
  // capability being the initial user namespace's, detach the device
  // program from its cgroup with bpf(2); or, without a cgroup namespace,
  // mount a hierarchy from its root and move itself out of its cgroup (and
  // out from under the program). Refused unless all devices are allowed.
  // (Allow all with denials after it denies devices too.)
  const deviceGuard = !userns && !devicePolicyOf.everyDevice;
  if (deviceGuard && proc) deviceGuardProblems(proc, 'process', refuse);

  if (proc) processProblems(proc, 'process', refuse);

  const root = spec.root ? resolve(bundle, spec.root.path) : bundle;
  if (spec.root) {
    try {
      if (!statSync(root).isDirectory()) refuse('root.path', `${root} is not a directory`);
      else if (!spec.root.readonly && isHostRoot(root)) refuse('root.path', `${root} is the host's root, which the container would write into: give it a root filesystem of its own, or make it root.readonly`);
    } catch {
      refuse('root.path', `${root} does not exist`);
    }
  }
  // An idmapped volume (idmap, ridmap) shifts by the container's own maps.
  const idmaps = userns && globalThis.process.getuid?.() === 0 ? { uid: linux.uidMappings ?? [], gid: linux.gidMappings ?? [] } : null;
  const mounts = ociMounts(spec.mounts ?? [], bundle, nodev, refuse, idmaps);

  // The options the launch reads; their own checks (limits) report in tsbox's
  // names, mapped back to the config's here.
  const input: RunOptions = {
    rootfs: root,
    detach: true,
    stdio: 'inherit',
    init: false,
    trace,
    userns: userns ? 'private' : 'host',
    writableRootfs: !spec.root?.readonly,
    readOnly: spec.root?.readonly === true,
    ...(linux.uidMappings?.length ? { uidMap: linux.uidMappings.map((m) => ({ containerId: m.containerID, hostId: m.hostID, size: m.size })) } : {}),
    ...(linux.gidMappings?.length ? { gidMap: linux.gidMappings.map((m) => ({ containerId: m.containerID, hostId: m.hostID, size: m.size })) } : {}),
    ...limits.options,
  };
  let options: ResolvedOptions | undefined;
  try {
    options = parseRunInput(proc?.args ?? ['true'], input).options;
  } catch (err) {
    const issues = (err as TsboxError & { issues?: SpecProblem[] }).issues;
    if (!(err instanceof TsboxError) || !issues) throw err;
    for (const i of issues) {
      const key = i.path.split(/[.[]/)[0]!;
      // The place inside the field (hugepageLimits[0].pageSize) is the same in the config.
      refuse(limits.paths[key] !== undefined ? `${limits.paths[key]}${i.path.slice(key.length)}` : i.path, i.message);
    }
  }
  if (problems.length > 0 || !options || !spec.root) throw specError(file, problems);

  const hooks: Partial<Record<HookName, OciHook[]>> = {};
  for (const [name, list] of Object.entries(spec.hooks ?? {})) {
    if (!Array.isArray(list) || list.length === 0) continue;
    hooks[name as HookName] = list as OciHook[];
  }
  // createContainer and startContainer run in the container, by its first
  // process (the plans carry them: ociCreate); the others run here.

  // Without a process, the monitor holds one that start never hands over
  // (start refuses first); were it ever run, it could do nothing: no
  // capabilities, no_new_privs, and a directory for a command.
  const process: OciProcess = proc ?? { args: ['/'], cwd: '/', user: { uid: 0, gid: 0 }, capabilities: {}, noNewPrivileges: true };
  const plans = (ctx: PlanContext): { sandbox: SandboxPlan; process: ProcessPlan } => {
    const withCgroup: PlanMount[] = [];
    const nested = !namespaces.includes('cgroup') && inUserNamespace();
    for (const m of mounts) {
      if (m !== CGROUP_MOUNT) withCgroup.push(m);
      // Its own cgroup namespace (made or joined) shows its own cgroups in
      // a fresh mount; without one, they are bound from the host.
      else if (ctx.cgroup) withCgroup.push(...(namespaces.includes('cgroup') ? cgroupMounts(ctx.cgroup) : cgroupBinds(ctx.cgroup)));
      // Rootless podman's (in a user namespace it made, owning no cgroup
      // namespace a cgroupfs could be mounted from): the host's, bound
      // read-only, as runc binds it there; its user can read it anyway.
      else if (nested) withCgroup.push({ target: '/sys/fs/cgroup', type: 'bind', source: '/sys/fs/cgroup', recursive: true, readonly: true, nosuid: true, nodev: true, noexec: true });
      else withCgroup.push({ target: '/sys/fs/cgroup', type: 'fs', fstype: 'cgroup2', data: null, readonly: true, nosuid: true, nodev: true, noexec: true });
    }
    withCgroup.push(...devices);
    for (const target of linux.maskedPaths ?? []) withCgroup.push({ target, type: 'mask' });
    for (const target of linux.readonlyPaths ?? []) withCgroup.push({ target, type: 'readonlyPath' });
    const sandbox: SandboxPlan = {
      version: ctx.planVersion,
      // Without a name, the container keeps the one its uts namespace has
      // (a new one's is a copy of the host's; a joined one's is left alone).
      hostname: spec.hostname ?? '',
      namespaces,
      rootfs: { kind: 'path', path: root, mode: spec.root!.readonly ? 'readonly' : 'bind', idmap: false, nodev },
      rootfsPropagation: (linux.rootfsPropagation?.replace(/^r/, '') ?? 'private') as SandboxPlan['rootfsPropagation'],
      storageSize: defaultStorageSize(),
      mounts: cgroupMountsLast(withCgroup),
      init: false,
      maps: ctx.maps ?? { writer: 'none' },
      cgroup: ctx.cgroupPhase ?? { how: 'none' },
      ...(ctx.cgroupKept?.length ? { cgroupKept: [...ctx.cgroupKept] } : {}),
      network: 'loopback',
      trace,
      traceT0Ns: Number(ctx.traceT0Ns),
      parentPid: globalThis.process.pid,
      detach: true,
      control: ctx.control ?? null,
      join,
      sysctl,
      // A terminal exists from create on: its master goes to --console-socket then.
      console: process.terminal ? ttySize(process) : null,
      time,
      domainname: spec.domainname || null,
      reparent: false,
      createContainerHooks: null,
      runtimeHooks: false,
      seccompListener: null,
    };
    const plan = ociProcessPlan(process, linux.seccomp ?? null, ctx.seccomp, trace, linux.personality?.domain);
    // The container's process only, as runc: exec'd ones keep their caller's.
    plan.memoryPolicy = memoryPolicy;
    return { sandbox, process: plan };
  };

  return {
    options,
    plans: (ctx) => {
      try {
        return plans(ctx);
      } catch (err) {
        // A seccomp profile's problems are under `seccomp`: the config has them under linux.seccomp.
        const issues = (err as { issues?: SpecProblem[] }).issues;
        if (err instanceof TsboxError && issues) throw specError(file, issues.map((i) => ({ path: `linux.${i.path}`, message: i.message })));
        throw err;
      }
    },
    command: proc?.args ?? [],
    seccompAgent: notifies(linux.seccomp) ? { path: String(linux.seccomp!.listenerPath), metadata: typeof linux.seccomp!.listenerMetadata === 'string' ? linux.seccomp!.listenerMetadata : '' } : null,
    hooks,
    annotations: spec.annotations ?? {},
    ociVersion: spec.ociVersion,
    oomScoreAdj: proc?.oomScoreAdj ?? null,
    limited: Object.keys(limits.options).length > 0 || cgroupsPath !== undefined || devicePolicyOf.writes !== null,
    deviceRules: devicePolicyOf.writes,
    cgroupsPath,
    terminal: proc?.terminal === true,
    startable: proc !== undefined,
    deviceGuard,
  };
}

/**
 * What tsbox cannot carry out, or finds wrong, in an OCI `process` (the
 * config's, or one `exec --process` gives), under JSON path `at`.
 */
export function processProblems(proc: OciProcess, at: string, refuse: (path: string, message: string) => void): void {
  if (proc.apparmorProfile) refuse(`${at}.apparmorProfile`, 'AppArmor profiles are not supported by tsbox');
  if (proc.selinuxLabel) refuse(`${at}.selinuxLabel`, 'SELinux labels are not supported by tsbox');
  if (proc.execCPUAffinity != null) refuse(`${at}.execCPUAffinity`, 'is not supported by tsbox yet');
  (proc.scheduler?.flags ?? []).forEach((f, i) => {
    if (SCHED_FLAGS[f] === undefined) refuse(`${at}.scheduler.flags[${i}]`, `"${f}" is not a flag tsbox can set (${Object.keys(SCHED_FLAGS).join(', ')})`);
  });
  if (proc.user.username) refuse(`${at}.user.username`, 'is for Windows containers');
  for (const set of ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const) {
    (proc.capabilities?.[set] ?? []).forEach((c, i) => {
      if (!ALL_CAPABILITIES.includes(c)) refuse(`${at}.capabilities.${set}[${i}]`, `unknown capability "${c}" (names such as CAP_NET_ADMIN)`);
    });
  }
  const seen = new Set<string>();
  (proc.rlimits ?? []).forEach((r, i) => {
    const name = r.type.startsWith('RLIMIT_') ? r.type.slice('RLIMIT_'.length).toLowerCase() : '';
    if (!(RLIMIT_NAMES as readonly string[]).includes(name)) refuse(`${at}.rlimits[${i}].type`, `unknown rlimit "${r.type}" (RLIMIT_NOFILE, RLIMIT_NPROC, ...)`);
    else if (seen.has(name)) refuse(`${at}.rlimits[${i}].type`, `${r.type} is listed twice`);
    else if (BigInt(r.soft) > BigInt(r.hard)) refuse(`${at}.rlimits[${i}].soft`, 'must not be above hard');
    seen.add(name);
  });
}

/**
 * A process that could undo the nodev that holds the deny-all device rule
 * (CAP_SYS_ADMIN, or every capability) in a container without a user
 * namespace: its first process, or one exec'd into it.
 */
export function deviceGuardProblems(proc: OciProcess, at: string, refuse: (path: string, message: string) => void): void {
  const bounding = proc.capabilities ? (proc.capabilities.bounding ?? []) : null;
  if (bounding !== null && !bounding.includes('CAP_SYS_ADMIN')) return;
  refuse(
    bounding === null ? `${at}.capabilities` : `${at}.capabilities.bounding`,
    `${bounding === null ? 'leaves every capability, CAP_SYS_ADMIN included,' : 'has CAP_SYS_ADMIN,'} which outside a user namespace could open devices the device rules deny (by remounting the container's filesystems, by rewriting or leaving its device cgroup, or by detaching its eBPF device program): add a "user" namespace, drop CAP_SYS_ADMIN, or allow all devices (linux.resources.devices)`,
  );
}

/** sched_setattr(2)'s flags, by name (util clamps need values the spec has no room for). */
const SCHED_FLAGS: Record<string, number> = {
  SCHED_FLAG_RESET_ON_FORK: 0x01,
  SCHED_FLAG_RECLAIM: 0x02,
  SCHED_FLAG_DL_OVERRUN: 0x04,
  SCHED_FLAG_KEEP_POLICY: 0x08,
  SCHED_FLAG_KEEP_PARAMS: 0x10,
};
const SCHED_POLICIES = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE'];
const IOPRIO_CLASSES = ['', 'IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'];

/** The ProcessPlan of a checked OCI `process`, with the container's seccomp profile (linux.seccomp) and personality. */
export function ociProcessPlan(process: OciProcess, seccomp: Record<string, unknown> | null, compiler: SeccompCompiler, trace: boolean, personality?: 'LINUX' | 'LINUX32'): ProcessPlan {
  const sched = process.scheduler;
  const caps = process.capabilities;
  return {
    argv: process.args,
    env: process.env ?? [],
    cwd: process.cwd,
    user: { user: String(process.user.uid), group: String(process.user.gid), additionalGroups: (process.user.additionalGids ?? []).map(String) },
    capabilities: caps ? { bounding: caps.bounding ?? [], effective: caps.effective ?? [], permitted: caps.permitted ?? [], inheritable: caps.inheritable ?? [], ambient: caps.ambient ?? [] } : null,
    noNewPrivileges: process.noNewPrivileges === true,
    rlimits: (process.rlimits ?? []).map((r) => ({ name: r.type.slice('RLIMIT_'.length).toLowerCase(), soft: rlimitValue(r.soft), hard: rlimitValue(r.hard) })),
    // Profiles written for every architecture, with calls denied again where
    // the long list allowed them (podman's), are taken as runc takes them.
    seccomp: seccomp ? seccompProgram(seccomp as unknown as OciSeccompProfile, compiler, globalThis.process.cwd(), true) : null,
    tty: process.terminal ? ttySize(process) : null,
    trace,
    umask: process.user.umask ?? null,
    // PER_LINUX 0, PER_LINUX32 8 (<linux/personality.h>).
    personality: personality === undefined ? null : personality === 'LINUX32' ? 8 : 0,
    ioPriority: process.ioPriority ? { class: IOPRIO_CLASSES.indexOf(process.ioPriority.class), priority: process.ioPriority.priority ?? 0 } : null,
    scheduler: sched
      ? {
          policy: SCHED_POLICIES.indexOf(sched.policy),
          flags: (sched.flags ?? []).reduce((f, name) => f | SCHED_FLAGS[name]!, 0),
          nice: sched.nice ?? 0,
          priority: sched.priority ?? 0,
          runtime: Number(sched.runtime ?? 0),
          deadline: Number(sched.deadline ?? 0),
          period: Number(sched.period ?? 0),
        }
      : null,
    // Set by create, which knows the state the hooks read.
    startContainerHooks: null,
    memoryPolicy: null,
    seccompAgent: null,
  };
}

/** The terminal's size: `consoleSize`, else 80x24. */
function ttySize(process: OciProcess): { rows: number; cols: number } {
  const s = process.consoleSize;
  return s && s.width > 0 && s.height > 0 ? { rows: Math.min(s.height, 65535), cols: Math.min(s.width, 65535) } : { rows: 24, cols: 80 };
}

function rlimitValue(v: number | bigint): number | null {
  const b = BigInt(v);
  return b >= RLIM_INFINITY ? null : Number(b);
}

/** Whether `path` names the namespace of type `ns` this process is in (the host's, to the container). */
function isOwnNamespace(path: string, ns: Namespace): boolean {
  try {
    const file = ns === 'mount' ? 'mnt' : ns;
    const theirs = statSync(path);
    const mine = statSync(`/proc/self/ns/${file}`);
    return theirs.ino === mine.ino && theirs.dev === mine.dev;
  } catch {
    // Not there: the helper's join reports it, with the path.
    return false;
  }
}

/** The ipc namespace's parameters (and fs.mqueue.*): runc's list. */
const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/**
 * linux.sysctl: only parameters of a namespace the container has of its
 * own (ipc, net, uts); any other would change the host's.
 */
function ociSysctls(map: Record<string, string>, namespaces: Namespace[], refuse: (path: string, message: string) => void): Sysctl[] {
  const out: Sysctl[] = [];
  for (const [key, value] of Object.entries(map)) {
    const at = `linux.sysctl[${JSON.stringify(key)}]`;
    if (!/^[A-Za-z0-9_-]+([./][A-Za-z0-9_.:@-]+)*$/.test(key) || key.split(/[./]/).some((p) => p === '' || p === '..')) {
      refuse(at, 'is not a kernel parameter name (such as net.ipv4.ip_forward)');
      continue;
    }
    const dotted = key.includes('/') ? key.replaceAll('/', '.') : key;
    const ns: Namespace | null = IPC_SYSCTLS.has(dotted) || dotted.startsWith('fs.mqueue.') ? 'ipc' : dotted.startsWith('net.') ? 'net' : dotted === 'kernel.domainname' ? 'uts' : null;
    if (ns === null) refuse(at, "is not a parameter of a namespace (ipc's kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*; net.*; kernel.domainname): writing it would change the host's");
    else if (!namespaces.includes(ns)) refuse(at, `is the ${ns} namespace's: the container needs its own (linux.namespaces)`);
    else out.push({ key, value });
  }
  return out;
}

/** linux.devices: each a node made at its path (c and u: character, b: block, p: fifo). */
function ociDevices(list: NonNullable<OciSpec['linux']>['devices'] & object, refuse: (path: string, message: string) => void): PlanMount[] {
  const out: PlanMount[] = [];
  list.forEach((d, i) => {
    const at = `linux.devices[${i}]`;
    if (posix.normalize(d.path) !== d.path || d.path.includes('\0')) return refuse(`${at}.path`, 'must be a normalized absolute path (no .. or //)');
    const node = d.type === 'b' ? 'block' : d.type === 'p' ? 'fifo' : 'char';
    if (node !== 'fifo' && (d.major == null || d.minor == null)) return refuse(at, `a ${node} device needs major and minor`);
    out.push({ target: d.path, type: 'device', node, major: d.major ?? 0, minor: d.minor ?? 0, mode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0 });
  });
  return out;
}

/** Marks where the config mounts a cgroupfs: the container's own cgroups go there. */
const CGROUP_MOUNT: PlanMount = { target: '/sys/fs/cgroup', type: 'mask' };

/** Whether a linux.seccomp profile has an SCMP_ACT_NOTIFY rule (the compiler checks the rest: listenerPath, the calls). */
export function notifies(profile: Record<string, unknown> | null | undefined): boolean {
  return notifyRule(profile) >= 0;
}

/** <linux/mempolicy.h>'s modes and mode flags. */
const MPOL_MODES: Record<string, number> = { MPOL_DEFAULT: 0, MPOL_PREFERRED: 1, MPOL_BIND: 2, MPOL_INTERLEAVE: 3, MPOL_LOCAL: 4, MPOL_PREFERRED_MANY: 5, MPOL_WEIGHTED_INTERLEAVE: 6 };
const MPOL_FLAGS: Record<string, number> = { MPOL_F_NUMA_BALANCING: 1 << 13, MPOL_F_RELATIVE_NODES: 1 << 14, MPOL_F_STATIC_NODES: 1 << 15 };

/** linux.memoryPolicy by number; the kernel checks the nodes against the machine. */
function ociMemoryPolicy(p: NonNullable<NonNullable<OciSpec['linux']>['memoryPolicy']>, refuse: (path: string, message: string) => void): MemoryPolicy | null {
  const at = 'linux.memoryPolicy';
  const mode = MPOL_MODES[p.mode];
  if (mode === undefined) {
    refuse(`${at}.mode`, `"${p.mode}" is not a memory policy (${Object.keys(MPOL_MODES).join(', ')})`);
    return null;
  }
  let flags = 0;
  (p.flags ?? []).forEach((f, i) => {
    if (MPOL_FLAGS[f] === undefined) refuse(`${at}.flags[${i}]`, `"${f}" is not a memory policy flag (${Object.keys(MPOL_FLAGS).join(', ')})`);
    else flags |= MPOL_FLAGS[f];
  });
  const nodes: number[] = [];
  const list = p.nodes ?? '';
  if (list !== '') {
    if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(list)) {
      refuse(`${at}.nodes`, `"${list}" is not a list of memory nodes, such as 0-3,7`);
      return null;
    }
    for (const range of list.split(',')) {
      const [a, b] = range.split('-').map(Number);
      const low = a!;
      const high = b ?? low;
      if (high < low || high > 4095) {
        refuse(`${at}.nodes`, `"${range}" is not a range of memory nodes (low to high, below 4096)`);
        return null;
      }
      for (let n = low; n <= high; n++) nodes.push(n);
    }
  }
  // MPOL_DEFAULT and MPOL_LOCAL take no nodes; the others but MPOL_PREFERRED (empty: local) need some.
  if ((mode === 0 || mode === 4) && nodes.length > 0) refuse(`${at}.nodes`, `${p.mode} takes no nodes`);
  else if (![0, 1, 4].includes(mode) && nodes.length === 0) refuse(`${at}.nodes`, `${p.mode} needs the nodes it applies to`);
  return { mode, flags, nodes };
}

/** The config's mounts in order, with the default devices and /dev links after its /dev. */
type IdMapping = { containerID: number; hostID: number; size: number };

function ociMounts(list: OciMount[], bundle: string, nodev: boolean, refuse: (path: string, message: string) => void, idmaps: { uid: IdMapping[]; gid: IdMapping[] } | null): PlanMount[] {
  const out: PlanMount[] = [];
  let devAt = -1;
  list.forEach((m, i) => {
    const at = `mounts[${i}]`;
    const target = posix.normalize(m.destination.startsWith('/') ? m.destination : `/${m.destination}`).replace(/(.)\/$/, '$1');
    if (m.destination.includes('\0') || target.split('/').includes('..')) return refuse(`${at}.destination`, 'must be a path inside the container, without ..');
    const opts = m.options ?? [];
    const idmap = opts.includes('idmap') || opts.includes('ridmap') || Boolean(m.uidMappings?.length || m.gidMappings?.length);
    if (idmap) {
      if (!(m.type === 'bind' || opts.includes('bind') || opts.includes('rbind'))) return refuse(`${at}.options`, 'an idmapped mount is a bind mount: add "bind" or "rbind"');
      if (idmaps === null) return refuse(`${at}.options`, 'an idmapped mount shifts ids by the container\'s own user namespace: it needs a "user" namespace made for the container, and root (CAP_SYS_ADMIN where the filesystem lives)');
      // The mount's own maps, when given, must be the container's (the namespace tsbox idmaps by).
      const same = (a: IdMapping[] | null | undefined, b: IdMapping[]) => !a?.length || (a.length === b.length && a.every((x, k) => x.containerID === b[k]!.containerID && x.hostID === b[k]!.hostID && x.size === b[k]!.size));
      if (!same(m.uidMappings, idmaps.uid)) return refuse(`${at}.uidMappings`, 'an idmapped mount with maps other than the container\'s (linux.uidMappings) is not supported by tsbox yet');
      if (!same(m.gidMappings, idmaps.gid)) return refuse(`${at}.gidMappings`, 'an idmapped mount with maps other than the container\'s (linux.gidMappings) is not supported by tsbox yet');
    }
    const bind = m.type === 'bind' || opts.includes('bind') || opts.includes('rbind');
    const flags = { readonly: false, nosuid: false, nodev: false, noexec: false };
    let extra = 0;
    let propagation: (typeof PROPAGATION)[string] | undefined;
    const data: string[] = [];
    let bad = false;
    const rbind = opts.includes('rbind');
    opts.forEach((given, j) => {
      let o = given;
      if (RECURSIVE_CLEARS[o] !== undefined) {
        if (rbind) {
          bad = true;
          return refuse(`${at}.options[${j}]`, `"${o}" would clear the attribute on every mount of the rbind, which tsbox does not do: leave it out, or use "${RECURSIVE_CLEARS[o]}"`);
        }
        o = RECURSIVE_CLEARS[o]!;
      }
      o = RECURSIVE_SETS[o] ?? o;
      const on: Partial<Record<string, [keyof typeof flags, boolean]>> = {
        ro: ['readonly', true], rw: ['readonly', false], nosuid: ['nosuid', true], suid: ['nosuid', false],
        nodev: ['nodev', true], dev: ['nodev', false], noexec: ['noexec', true], exec: ['noexec', false],
      };
      const f = on[o];
      if (f) flags[f[0]] = f[1];
      else if (o === 'bind' || o === 'rbind' || o === 'idmap' || o === 'ridmap' || DEFAULT_OPTIONS.has(o)) return;
      else if (PROPAGATION[o] !== undefined) propagation = PROPAGATION[o];
      else if (UNSUPPORTED_OPTIONS.has(o)) {
        bad = true;
        refuse(`${at}.options[${j}]`, `"${o}" is not supported by tsbox yet`);
      } else if (FLAG_OPTIONS[o] !== undefined) {
        if (bind && !BIND_FLAGS.has(o)) {
          bad = true;
          refuse(`${at}.options[${j}]`, `"${o}" is a filesystem's option, which a bind mount cannot set (it shares the source's filesystem)`);
        } else extra |= FLAG_OPTIONS[o]!;
      } else if (bind) {
        bad = true;
        refuse(`${at}.options[${j}]`, `"${o}" is not an option of a bind mount`);
      } else data.push(o);
    });
    if (bad) return;
    if (bind) {
      if (!m.source) return refuse(`${at}.source`, 'a bind mount needs a source');
      const source = resolve(bundle, m.source);
      let st;
      try {
        st = lstatSync(source);
        if (st.isSymbolicLink()) st = statSync(source);
      } catch {
        return refuse(`${at}.source`, `${source} does not exist`);
      }
      if (nodev && (st.isCharacterDevice() || st.isBlockDevice())) return refuse(`${at}.source`, `${source} is a device node, which the device rules (linux.resources.devices) deny`);
      out.push({ target, type: 'bind', source, recursive: rbind, ...(idmap ? { idmap: true } : {}), ...flags, nodev: flags.nodev || nodev, ...(extra ? { flags: extra } : {}), ...(propagation ? { propagation } : {}) });
      return;
    }
    const type = m.type ?? '';
    if (type === '') return refuse(`${at}.type`, 'a mount that is not a bind needs a type (tmpfs, proc, ...)');
    if (type === 'cgroup' || type === 'cgroup2') {
      if (target !== '/sys/fs/cgroup') return refuse(`${at}.destination`, 'tsbox mounts the container\'s cgroups at /sys/fs/cgroup only');
      if (!flags.readonly) return refuse(`${at}.options`, 'the cgroupfs is read-only in a tsbox container: add "ro"');
      out.push(CGROUP_MOUNT);
      return;
    }
    const devpts = type === 'devpts';
    out.push({
      target,
      type: 'fs',
      fstype: type,
      data: data.length > 0 ? data.join(',') : null,
      ...(m.source && m.source !== type ? { source: m.source } : {}),
      ...flags,
      nodev: flags.nodev || (nodev && !devpts),
      ...(extra ? { flags: extra } : {}),
      ...(propagation ? { propagation } : {}),
    });
    if (target === '/dev') devAt = out.length;
  });
  // The devices and links every container has (runtime-spec, Linux), over
  // its /dev, unless the config mounts something there itself.
  const taken = new Set(out.map((m) => m.target));
  const links: [string, string][] = [
    ['/dev/ptmx', 'pts/ptmx'],
    ['/dev/fd', '/proc/self/fd'],
    ['/dev/stdin', '/proc/self/fd/0'],
    ['/dev/stdout', '/proc/self/fd/1'],
    ['/dev/stderr', '/proc/self/fd/2'],
  ];
  const defaults: PlanMount[] = [
    ...DEVICES.map((d): PlanMount => ({ target: `/dev/${d}`, type: 'bind', source: `/dev/${d}`, recursive: false, nosuid: true, noexec: true })),
    ...links.map(([target, link]): PlanMount => ({ target, type: 'symlink', link })),
  ].filter((m) => !taken.has(m.target));
  if (devAt < 0) {
    out.unshift({ target: '/dev', type: 'fs', fstype: 'tmpfs', data: 'mode=755,size=65536k', nosuid: true, nodev, noexec: false, readonly: false });
    devAt = 1;
  }
  out.splice(devAt, 0, ...defaults);
  return out;
}

/** The device nodes every container has (/dev's defaults, and its terminals): allowed after a config's rules, as runc does. */
const DEFAULT_DEVICE_RULES = ['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 136:* rwm'];

/**
 * linux.resources.devices: whether the rules end in allow all (`allowAll`;
 * `everyDevice` when no denial follows it either), and,
 * with a device cgroup or the eBPF device program (`control`), the rules in
 * order as v1 device cgroup writes: deny all, the config's rules, then the
 * default devices unless all are allowed (the program decides from the same
 * list as the v1 controller would). Without either, only deny all and allow
 * all can be carried out.
 */
function devicePolicy(spec: OciSpec, refuse: (path: string, message: string) => void, control: DeviceControl): { allowAll: boolean; everyDevice: boolean; writes: DeviceRuleWrite[] | null } {
  const cgroup = control === 'cgroup' || control === 'ebpf';
  const needs =
    control === 'rootless'
      ? 'needs a device cgroup (cgroup v1) or an eBPF device program (cgroup v2), which tsbox has as root only: writing a device cgroup\'s rules and loading a device program need CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace'
      : 'needs a v1 device cgroup, and this host has no v1 devices hierarchy (tsbox uses an eBPF device program instead on pure cgroup v2 hosts only)';
  const rules = spec.linux?.resources?.devices ?? [];
  let allowAll = false;
  // A rule denying some devices after the last allow all.
  let denies = false;
  const writes: DeviceRuleWrite[] = [{ file: 'devices.deny', value: 'a' }];
  rules.forEach((r, i) => {
    const at = `linux.resources.devices[${i}]`;
    const type = r.type ?? 'a';
    // -1 is a wildcard as null is (runtime-spec: major and minor may be left out, or -1 for all).
    const any = (v: number | bigint | null | undefined) => v == null || v === -1 || v === -1n;
    const all = type === 'a' && any(r.major) && any(r.minor);
    const access = r.access ?? 'rwm';
    if (cgroup) {
      if (!['a', 'c', 'b'].includes(type)) return refuse(`${at}.type`, `"${type}" is not a device type of a device rule (a, c or b)`);
      // The kernel takes `a` for every device and every access, whatever
      // else the rule says: anything narrower written with it would widen.
      if (type === 'a' && (!all || (r.allow && access !== 'rwm'))) {
        return refuse(at, 'type "a" is every device with every access (r, w and m): leave out major and minor, and give access "rwm", or name the device type (c or b)');
      }
      if (!/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length) return refuse(`${at}.access`, `"${access}" is not a device access (r, w and m, each at most once)`);
      for (const k of ['major', 'minor'] as const) {
        const v = r[k];
        if (v != null && v !== -1 && !(Number.isInteger(v) && v >= 0)) return refuse(`${at}.${k}`, `${v} is not a device number (or null, or -1, for any)`);
      }
      const num = (v: number | null | undefined) => (v == null || v === -1 ? '*' : String(v));
      writes.push({ file: r.allow ? 'devices.allow' : 'devices.deny', value: type === 'a' ? 'a' : `${type} ${num(r.major)}:${num(r.minor)} ${access}` });
      if (all) allowAll = r.allow;
      denies = all ? false : denies || (allowAll && !r.allow);
      return;
    }
    if (!r.allow) {
      if (!all) refuse(at, `a rule for some devices ${needs} (deny all, or allow all)`);
      else allowAll = false;
    } else if (all && /^[rwm]*$/.test(access) && access.includes('r') && access.includes('w')) {
      allowAll = true;
    } else if (!/^m*$/.test(access)) {
      refuse(at, `allowing some devices ${needs} (the default devices are there without a rule)`);
    }
  });
  if (!cgroup) return { allowAll, everyDevice: allowAll, writes: null };
  if (!allowAll) writes.push(...DEFAULT_DEVICE_RULES.map((value) => ({ file: 'devices.allow' as const, value })));
  return { allowAll, everyDevice: allowAll && !denies, writes };
}

const BLOCK_IO_KEYS = new Set(['weight', 'leafWeight', 'weightDevice', 'throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice']);

/** linux.resources as tsbox's limits, and where each came from in the config. */
export function ociLimits(r: OciResources | null | undefined, refuse: (path: string, message: string) => void, base = 'linux.resources'): { options: Partial<RunOptions>; paths: Record<string, string> } {
  const options: Record<string, unknown> = {};
  const paths: Record<string, string> = {};
  if (!r) return { options, paths };
  const num = (v: number | bigint | null | undefined) => (v == null ? undefined : Number(v));
  const set = (key: string, path: string, v: unknown) => {
    if (v === undefined) return;
    options[key] = v;
    paths[key] = `${base}.${path}`;
  };
  const m = r.memory;
  if (m) {
    const limit = num(m.limit);
    if (limit !== undefined && limit > 0) set('memory', 'memory.limit', limit);
    const res = num(m.reservation);
    if (res !== undefined && res > 0) set('memoryReservation', 'memory.reservation', res);
    const swap = num(m.swap);
    if (swap !== undefined && swap !== 0) set('memorySwap', 'memory.swap', swap < 0 ? -1 : swap);
    // -1 (and 0) is no limit, as in runc.
    const kernel = num(m.kernel);
    if (kernel !== undefined && kernel > 0) {
      if (kmemLimitEnforced()) set('kernelMemory', 'memory.kernel', kernel);
      else refuse(`${base}.memory.kernel`, `this kernel (${release()}) ignores kernel memory limits (6.1 made memory.kmem.limit_in_bytes a no-op): kernel memory counts in memory.limit; leave it out`);
    }
    const kernelTCP = num(m.kernelTCP);
    if (kernelTCP !== undefined && kernelTCP > 0) set('kernelMemoryTCP', 'memory.kernelTCP', kernelTCP);
    const swappiness = num(m.swappiness);
    if (swappiness !== undefined) {
      if (swappiness > 100) refuse(`${base}.memory.swappiness`, `${swappiness} is not a swappiness (0 to 100)`);
      else set('memorySwappiness', 'memory.swappiness', swappiness);
    }
    if (m.disableOOMKiller) set('oomKillDisable', 'memory.disableOOMKiller', true);
    // Hierarchical accounting is all the kernel has had since 5.x (v1's use_hierarchy is 1, v2 has no other).
    if (m.useHierarchy === false) refuse(`${base}.memory.useHierarchy`, 'false is not supported: the kernel accounts memory hierarchically');
  }
  const c = r.cpu;
  if (c) {
    set('cpuShares', 'cpu.shares', num(c.shares) || undefined);
    const quota = num(c.quota);
    if (quota !== undefined && quota !== 0) set('cpuQuota', 'cpu.quota', quota < 0 ? -1 : quota);
    set('cpuPeriod', 'cpu.period', num(c.period) || undefined);
    set('cpusetCpus', 'cpu.cpus', c.cpus || undefined);
    set('cpusetMems', 'cpu.mems', c.mems || undefined);
    for (const k of ['burst', 'realtimeRuntime', 'realtimePeriod', 'idle'] as const) if (c[k] != null && Number(c[k]) !== 0) refuse(`${base}.cpu.${k}`, 'is not supported by tsbox yet');
  }
  const pids = num(r.pids?.limit);
  if (pids !== undefined) set('pidsLimit', 'pids.limit', pids <= 0 ? -1 : pids);
  const b = r.blockIO;
  if (b) {
    set('blkioWeight', 'blockIO.weight', b.weight || undefined);
    // The kernel lost leaf weights with CFQ (5.0); runc's write of them fails there too.
    if (b.leafWeight) refuse(`${base}.blockIO.leafWeight`, 'the kernel has had no leaf weight since 5.0 (it went with the CFQ scheduler): leave it out');
    // A block device by number, as the config gives it.
    const device = (d: { major: number | bigint; minor: number | bigint }) => ({ major: Number(d.major), minor: Number(d.minor) });
    const weights = (b.weightDevice ?? []).flatMap((d, i) => {
      if (d.leafWeight) refuse(`${base}.blockIO.weightDevice[${i}].leafWeight`, 'the kernel has had no leaf weight since 5.0 (it went with the CFQ scheduler): leave it out');
      return d.weight ? [{ ...device(d), weight: d.weight }] : [];
    });
    if (weights.length > 0) set('blkioWeightDevice', 'blockIO.weightDevice', weights);
    const rates = { throttleReadBpsDevice: 'deviceReadBps', throttleWriteBpsDevice: 'deviceWriteBps', throttleReadIOPSDevice: 'deviceReadIops', throttleWriteIOPSDevice: 'deviceWriteIops' } as const;
    for (const [k, limit] of Object.entries(rates) as [keyof typeof rates, (typeof rates)[keyof typeof rates]][]) {
      // A rate of 0 is no limit (the kernel's own reading of it).
      const list = (b[k] ?? []).filter((d) => num(d.rate)! > 0).map((d) => ({ ...device(d), rate: num(d.rate)! }));
      if (list.length > 0) set(limit, `blockIO.${k}`, list);
    }
    for (const k of Object.keys(b)) if (!BLOCK_IO_KEYS.has(k) && b[k] != null) refuse(`${base}.blockIO.${k}`, 'is not a field of runtime-spec 1.2 that tsbox knows');
  }
  if (r.hugepageLimits?.length) set('hugepageLimits', 'hugepageLimits', r.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: num(h.limit)! })));
  if (r.network) {
    const classId = num(r.network.classID);
    if (classId) set('networkClassId', 'network.classID', classId);
    if (r.network.priorities?.length) set('networkPriorities', 'network.priorities', r.network.priorities.map((p) => ({ name: p.name, priority: num(p.priority)! })));
  }
  if (r.rdma != null && Object.keys(r.rdma).length > 0) refuse(`${base}.rdma`, 'is not supported by tsbox (no rdma controller here to test it against)');
  if (r.unified && Object.keys(r.unified).length > 0) set('unified', 'unified', r.unified);
  return { options, paths };
}

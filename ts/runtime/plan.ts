/**
 * Phase `plan` (README, How it works): turns validated options into the two
 * plans the helper executes, as the OCI runtime-spec separates them: the
 * SandboxPlan (root and mounts, namespaces, ids, cgroup, network) and the
 * ProcessPlan (argv, env, user, capabilities, seccomp, rlimits, tty). Parse
 * first, act second: every mount, id and capability is decided here, in one
 * place, before anything is cloned.
 */
import { readFileSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { resolve } from 'node:path';

import { effectiveCapabilities, hostNetworkAsRoot, withoutEgressRefused } from '../config/capabilities.js';
import { DEFAULT_PATH } from '../config/defaults.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, type Volume } from '../config/mounts.js';
import type { ResolvedOptions } from '../config/schema.js';
import { seccompProgram, type SeccompCompiler } from '../config/seccomp.js';
import { TsboxError } from '../errors.js';

import type { Capabilities, Mount, Namespace, ProcessPlan, SandboxPlan } from '../generated/wire.js';

// The plans' types are generated from tsbox_core's (crates/tsbox-core/src/plan.rs).
export type { IdMaps, Namespace, ProcessPlan, SandboxPlan } from '../generated/wire.js';
export type PlanMount = Mount;

export const ALL_NAMESPACES: readonly Namespace[] = ['user', 'pid', 'mount', 'net', 'ipc', 'uts', 'cgroup'];

/** The flags every mount may carry (each false when left out). */
export type MountFlags = Pick<Mount, 'readonly' | 'nosuid' | 'nodev' | 'noexec' | 'optional'>;

const fs = (target: string, fstype: string, data: string | null, flags: MountFlags): PlanMount => ({ target, type: 'fs', fstype, data, ...flags });

/**
 * The devices a container sees: the OCI default set, bound from the host's
 * /dev read-only. Each is the host's own inode, which container root may own
 * (always with --userns host): on a read-only bind chmod and chown give EROFS,
 * while the device still opens for writing (the helper makes every bind of a
 * device read-only too: crates/tsbox-init/src/child/mounts.rs, DEVICE_BIND).
 */
export const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'] as const;

/** /proc, /sys and a minimal /dev, as runc and Docker give them. */
export function systemMounts(shmSize: number = 64 * 1024 * 1024): PlanMount[] {
  return [
    fs('/proc', 'proc', null, { nosuid: true, nodev: true, noexec: true }),
    fs('/sys', 'sysfs', null, { readonly: true, nosuid: true, nodev: true, noexec: true }),
    fs('/dev', 'tmpfs', 'mode=755,size=65536k', { nosuid: true }),
    ...DEVICES.map((d): PlanMount => ({ target: `/dev/${d}`, type: 'bind', source: `/dev/${d}`, recursive: false, readonly: true, nosuid: true, noexec: true })),
    fs('/dev/pts', 'devpts', 'newinstance,ptmxmode=0666,mode=0620', { nosuid: true, noexec: true }),
    { target: '/dev/ptmx', type: 'symlink', link: 'pts/ptmx' },
    fs('/dev/shm', 'tmpfs', `mode=1777,size=${shmSize}`, { nosuid: true, nodev: true, noexec: true }),
    fs('/dev/mqueue', 'mqueue', null, { nosuid: true, nodev: true, noexec: true }),
    { target: '/dev/fd', type: 'symlink', link: '/proc/self/fd' },
    { target: '/dev/stdin', type: 'symlink', link: '/proc/self/fd/0' },
    { target: '/dev/stdout', type: 'symlink', link: '/proc/self/fd/1' },
    { target: '/dev/stderr', type: 'symlink', link: '/proc/self/fd/2' },
  ];
}

/**
 * A rootfs written into must not be the host's own root, however it is
 * named (`/`, `/./`, a symlink, a bind mount of it, /proc/1/root): compared by
 * device and inode, with this process's root and init's. The one it is, or null.
 */
export function isHostRoot(path: string): string | null {
  const st = statSync(path);
  for (const root of ['/', '/proc/1/root']) {
    let r;
    try {
      r = statSync(root);
    } catch {
      continue;
    }
    if (r.dev === st.dev && r.ino === st.ino) return root;
  }
  return null;
}

function refuseHostRoot(path: string): void {
  const root = isHostRoot(path);
  if (root === null) return;
  throw new TsboxError({
    step: 'config',
    errno: 0,
    path,
    detail: `the rootfs is the host's root (${root}), and writableRootfs would let the container write into it`,
    hint: 'leave out --rootfs to run on the host\'s root read-only, or give a directory holding a root filesystem of its own',
  });
}

/** Checks the rootfs before anything is created, so the error comes first and cheaply. */
function checkRootfs(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TsboxError({
      step: 'open_rootfs',
      errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0),
      path,
      detail: code === 'ENOENT' ? 'the rootfs directory does not exist' : `the rootfs cannot be read (${code})`,
      hint: code === 'ENOENT' ? 'pass an existing directory holding a root filesystem with --rootfs' : 'the rootfs must be readable by the user running tsbox',
    });
  }
  if (!st.isDirectory()) {
    throw new TsboxError({
      step: 'open_rootfs',
      errno: 20,
      path,
      detail: 'the rootfs is not a directory',
      hint: 'pass a directory holding a root filesystem (an unpacked image), not a file or archive',
    });
  }
}

export interface PlanContext {
  hostname: string;
  traceT0Ns: bigint;
  planVersion: number;
  /**
   * The container's ids are a range of host ids (root's default): the rootfs
   * is then idmapped so that host root's files are container root's. False
   * for a single-id map (an unprivileged caller).
   */
  idmap: boolean;
  /** The addon's seccomp compiler (kept out of the plan builder so unit tests need no addon). */
  seccomp: SeccompCompiler;
  /** The container's cgroup, when it has one: mounted read-only at /sys/fs/cgroup. */
  cgroup?: { mode: 'v1' | 'hybrid' | 'v2'; v2Path: string | null; paths: Readonly<Record<string, string>> } | null;
  /** Phase `cgroup`, as launch decided it. */
  cgroupPhase?: SandboxPlan['cgroup'];
  /** Directories of the cgroup that existed before (a joined cgroupsPath): the monitor never removes them. */
  cgroupKept?: readonly string[];
  /** The cgroup files the result's usage comes from: the monitor reads them as the command ends. */
  usageFiles?: readonly string[];
  /** A pool slot's likely process, forked and prepared while the sandbox waits. */
  expectedProcess?: ProcessPlan | null;
  /** Phase `maps`, as launch decided it. */
  maps?: SandboxPlan['maps'];
  detach?: boolean;
  control?: string | null;
  /**
   * A detached container's log limit per file, when its log file is the
   * helper's stdout (the monitor keeps it bounded: helper/log.rs); none
   * for no limit, or no log.
   */
  logMaxSize?: number | null;
  /** An image's lower layers under the rootfs (its top layer), top first. */
  layers?: readonly string[] | undefined;
  /**
   * The network namespace to join, as the helper opens it: an `ns:PATH`'s
   * path, or a descriptor of this process for `container:NAME`'s
   * (ts/network/join.ts), which ts/network keeps open until the clone.
   */
  netnsPath?: string | null;
}

/** The container's own cgroups at /sys/fs/cgroup, read-only, as Docker mounts them. */
export function cgroupMounts(cg: NonNullable<PlanContext['cgroup']>): PlanMount[] {
  const flags = { nosuid: true, nodev: true, noexec: true };
  if (cg.mode === 'v2') return [{ ...fs('/sys/fs/cgroup', 'cgroup2', null, flags), readonly: true }];
  // v1 and hybrid: a tmpfs with one mount per hierarchy the container has a cgroup in.
  return [
    fs('/sys/fs/cgroup', 'tmpfs', 'mode=755', flags),
    ...Object.keys(cg.paths).map((h) =>
      h === 'unified'
        ? fs('/sys/fs/cgroup/unified', 'cgroup2', null, flags)
        : h.startsWith('name=')
          ? fs(`/sys/fs/cgroup/${h.slice('name='.length)}`, 'cgroup', `none,${h}`, flags)
          : fs(`/sys/fs/cgroup/${h}`, 'cgroup', h, flags),
    ),
    { target: '/sys/fs/cgroup', type: 'readonlyPath' },
  ];
}

/**
 * The container's own cgroups at /sys/fs/cgroup, read-only, for a container
 * without a cgroup namespace (an OCI bundle's): each directory bound from
 * the host, as runc does, since a fresh mount there would show each
 * hierarchy from its root (every other cgroup on the host).
 */
export function cgroupBinds(cg: NonNullable<PlanContext['cgroup']>): PlanMount[] {
  const flags = { nosuid: true, nodev: true, noexec: true };
  const { paths } = cg;
  const bind = (target: string, source: string): PlanMount => ({ target, type: 'bind', source, recursive: false, readonly: true, ...flags });
  if (cg.mode === 'v2') return paths.unified ? [bind('/sys/fs/cgroup', paths.unified)] : [];
  return [
    fs('/sys/fs/cgroup', 'tmpfs', 'mode=755', flags),
    ...Object.entries(paths).map(([h, dir]) => bind(`/sys/fs/cgroup/${h.startsWith('name=') ? h.slice('name='.length) : h}`, dir)),
    { target: '/sys/fs/cgroup', type: 'readonlyPath' },
  ];
}

/**
 * What a container may write outside its volumes when it does not say: the
 * smaller of 1 GiB and an eighth of the host's RAM, since it is held in
 * memory (README, Defaults).
 */
export function defaultStorageSize(ram: number = totalmem()): number {
  return Math.min(1024 ** 3, Math.floor(ram / 8 / 4096) * 4096);
}

/** Defaults applied under the caller's ulimits: no core dumps. */
export const DEFAULT_ULIMITS = { core: { soft: 0, hard: 0 } } as const;

/** What the container's /etc/hosts and /etc/resolv.conf add to or take from the host's (Docker's --add-host, --dns, --dns-search). */
export interface EtcOptions {
  addHost?: readonly string[];
  dns?: readonly string[];
  dnsSearch?: readonly string[];
  /** The network mode: `host` keeps the host's loopback resolvers (the container shares that loopback). */
  network?: string;
}

/** systemd-resolved's list of the upstream servers, which its stub 127.0.0.53 forwards to. */
export const RESOLVED_UPSTREAM = '/run/systemd/resolve/resolv.conf';

const LOOPBACK_NAMESERVER = /^\s*nameserver\s+(127\.|::1\b)/;

/** /etc/hostname, /etc/hosts and /etc/resolv.conf of the container, as Docker writes them. */
export function etcFiles(hostname: string, hostResolvConf = '/etc/resolv.conf', extra: EtcOptions = {}, upstream = RESOLVED_UPSTREAM): PlanMount[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      // No resolv.conf on the host: the container gets an empty one.
      return '';
    }
  };
  let resolv = read(hostResolvConf);
  if (extra.network !== 'host') {
    // The host's resolvers, less those on its loopback (unreachable from the
    // container's). When that leaves none (systemd-resolved's stub,
    // 127.0.0.53), the upstream servers the stub forwards to, if known.
    const lines = resolv.split('\n');
    const kept = lines.filter((l) => !LOOPBACK_NAMESERVER.test(l));
    if (kept.length < lines.length && !kept.some((l) => /^\s*nameserver\s/.test(l)) && !extra.dns?.length) {
      const up = read(upstream).split('\n').filter((l) => /^\s*nameserver\s/.test(l) && !LOOPBACK_NAMESERVER.test(l));
      kept.push(...up);
    }
    resolv = kept.join('\n');
  }
  // Given nameservers or search domains replace the host's, as Docker's do.
  const lines = resolv.split('\n').filter((l) => l !== '');
  const keep = lines.filter((l) => !(extra.dns?.length && /^\s*nameserver\s/.test(l)) && !(extra.dnsSearch?.length && /^\s*(search|domain)\s/.test(l)));
  if (extra.dnsSearch?.length) keep.unshift(`search ${extra.dnsSearch.join(' ')}`);
  for (const ns of extra.dns ?? []) keep.push(`nameserver ${ns}`);
  resolv = keep.join('\n');
  const added = (extra.addHost ?? []).map((e) => {
    const at = e.search(/[:=]/);
    return `${e.slice(at + 1).replace(/^\[|\]$/g, '')}\t${e.slice(0, at)}\n`;
  });
  const hosts = `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n${added.join('')}`;
  return [
    { target: '/etc/hostname', type: 'file', contents: `${hostname}\n`, mode: 0o644, optional: true },
    { target: '/etc/hosts', type: 'file', contents: hosts, mode: 0o644, optional: true },
    { target: '/etc/resolv.conf', type: 'file', contents: resolv.endsWith('\n') || resolv === '' ? resolv : `${resolv}\n`, mode: 0o644, optional: true },
  ];
}

/** An idmapped mount was asked for where tsbox cannot make one. */
function idmapUnavailable(path: string, what: string): TsboxError {
  return new TsboxError({
    step: 'config',
    errno: 0,
    path,
    detail: `${what} asks for an idmapped mount, which needs a range of container ids that tsbox maps as root`,
    hint: 'run as root without --userns host and without a single-id map, or leave idmap out (the container then sees its own ids there)',
  });
}

/** A volume as a plan mount; the host path must exist. */
function volumeMount(v: Volume, idmap: boolean): PlanMount {
  if (v.type === 'tmpfs') {
    const data = [v.mode !== undefined ? `mode=${v.mode.toString(8)}` : 'mode=1777', ...(v.size !== undefined ? [`size=${v.size}`] : [])].join(',');
    return fs(v.target, 'tmpfs', data, { readonly: v.readonly, nosuid: true, nodev: true, noexec: true });
  }
  const source = resolve(v.source);
  try {
    // Only so that a missing host path is named before anything starts:
    // what the path is then decides nothing (the helper opens it again).
    statSync(source);
  } catch (err) {
    throw new TsboxError({
      step: 'volume',
      errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 0),
      path: source,
      detail: `the host path of the volume ${v.source}:${v.target} does not exist or cannot be read`,
      hint: 'create it first; tsbox does not create host paths for volumes',
    });
  }
  if (v.idmap && !idmap) throw idmapUnavailable(v.source, `the volume ${v.source}:${v.target}`);
  // nodev, as bubblewrap's --bind: a device node under the host path does
  // not open in the container. Docker's binds may leave it out because its
  // device cgroup denies what is not in /dev; tsbox's containers have no
  // device rules, and with --userns host container root is host root. A
  // volume that is itself a device (`-v /dev/kvm:/dev/kvm`, as Docker's
  // --device) is the one device the caller named: that bind is not nodev.
  // Which it is, the helper decides from the descriptor it binds
  // (devIfDevice): a look at the path here could see a device where a
  // symlink swapped in before the helper opens it names a directory of them.
  return { target: v.target, type: 'bind', source, recursive: true, idmap: v.idmap, readonly: v.readonly, nodev: true, devIfDevice: true };
}

/**
 * Whether the rootfs is idmapped. Under the throwaway overlay or read-only,
 * nothing container root writes reaches the directory, so it is idmapped
 * whenever it can be (host root's files are then container root's). Written
 * into (`writableRootfs`), files container root makes would be host root's:
 * only when asked (`rootfsIdmap`, `--rootfs DIR:idmap`).
 */
function rootfsIdmap(o: ResolvedOptions, mode: SandboxPlan['rootfs']['mode'], possible: boolean): boolean {
  if (o.rootfsIdmap === true && !possible) throw idmapUnavailable(o.rootfs ?? '/', 'rootfsIdmap');
  return possible && (o.rootfsIdmap ?? mode !== 'bind');
}

/** MAX_ARG_STRLEN: the kernel refuses a single argument or variable longer than this. */
const MAX_ARG_STRLEN = 32 * 4096;

/**
 * execve's limit on argv and env together (ARG_MAX): a quarter of the stack
 * rlimit, at least 128 KiB, at most 6 MiB, counting each string with its NUL
 * and a pointer. Checked here so that a command that cannot be started fails
 * before anything exists, saying so.
 */
function checkArgSize(argv: string[], env: string[], stackLimit: number | null): void {
  for (const [what, list] of [['command', argv], ['env', env]] as const) {
    const i = list.findIndex((s) => Buffer.byteLength(s) + 1 > MAX_ARG_STRLEN);
    if (i >= 0) {
      throw new TsboxError({
        step: 'config',
        errno: 7,
        path: `${what}[${i}]`,
        detail: `is ${Buffer.byteLength(list[i]!)} bytes; the kernel takes at most ${MAX_ARG_STRLEN - 1} per argument or variable`,
        hint: 'pass large data through a file (a volume) or stdin',
      });
    }
  }
  const limit = Math.min(Math.max((stackLimit ?? 8 * 1024 * 1024) / 4, 128 * 1024), 6 * 1024 * 1024);
  const size = [...argv, ...env].reduce((n, s) => n + Buffer.byteLength(s) + 1 + 8, 16);
  if (size > limit) {
    throw new TsboxError({
      step: 'config',
      errno: 7,
      path: 'command',
      detail: `the command's arguments and environment take ${size} bytes; execve takes at most ${limit} (ARG_MAX: a quarter of the stack limit, ${limit === 6 * 1024 * 1024 ? 'capped at 6 MiB' : 'at least 128 KiB'})`,
      hint: 'pass large data through a file (a volume) or stdin',
    });
  }
}

let ownStackLimit: number | null | undefined;

/** The stack rlimit the command will have, in bytes (null: unlimited); this process's is read once. */
function stackLimit(o: ResolvedOptions): number | null {
  const own = o.ulimits.stack;
  if (own) return own.soft;
  if (ownStackLimit !== undefined) return ownStackLimit;
  ownStackLimit = readStackLimit();
  return ownStackLimit;
}

function readStackLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max stack size'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? null : Number(soft);
  } catch {
    return null;
  }
}

export function buildPlan(command: string[], o: ResolvedOptions, ctx: PlanContext): { sandbox: SandboxPlan; process: ProcessPlan } {
  const hostRoot = o.rootfs === undefined;
  const rootfs = hostRoot ? '/' : resolve(o.rootfs!);
  if (!hostRoot) checkRootfs(rootfs);
  const mode = hostRoot || o.readOnly ? 'readonly' : o.writableRootfs ? 'bind' : 'overlay';
  if (mode === 'bind') refuseHostRoot(rootfs);
  const mounts = systemMounts(o.shmSize);
  // A sysfs shows the network namespace of whoever mounts it, and the kernel
  // lets a user namespace mount one only over a network namespace it owns:
  // a container that shares one (host, ns:PATH, container:NAME) gets the
  // host's /sys bound read-only instead, as runc does. With --userns host
  // a fresh one is tried (it has no submounts to show: debugfs, tracefs),
  // and where the kernel refuses it (the host's root, which has the host's
  // sysfs at /sys already: EBUSY) the helper binds the host's /sys itself.
  if (o.network.mode !== 'none' && o.network.mode !== 'bridge' && o.userns === 'private') {
    const at = mounts.findIndex((m) => m.target === '/sys');
    mounts[at] = { target: '/sys', type: 'bind', source: '/sys', recursive: true, readonly: true, nosuid: true, nodev: true, noexec: true };
  }
  if (mode === 'readonly') {
    // Writable scratch space on a read-only root, within the storage limit;
    // on the host's root this also hides the host's /run (its sockets).
    mounts.push({ target: '/tmp', type: 'scratch', mode: 0o1777, nosuid: true, nodev: true, optional: true });
    mounts.push({ target: '/run', type: 'scratch', mode: 0o755, nosuid: true, nodev: true, optional: true });
  }
  if (ctx.cgroup) mounts.push(...cgroupMounts(ctx.cgroup));
  mounts.push(...etcFiles(ctx.hostname, undefined, { ...o, network: o.network.mode }));
  for (const v of [...o.volumes, ...o.tmpfs, ...o.mounts]) mounts.push(volumeMount(v, ctx.idmap));
  for (const target of o.maskedPaths ?? DEFAULT_MASKED_PATHS) mounts.push({ target, type: 'mask' });
  for (const target of o.readonlyPaths ?? DEFAULT_READONLY_PATHS) mounts.push({ target, type: 'readonlyPath' });
  const sandbox: SandboxPlan = {
    version: ctx.planVersion,
    hostname: ctx.hostname,
    // network `host`: no net namespace of its own (the host's).
    namespaces: ALL_NAMESPACES.filter((ns) => (ns !== 'user' || o.userns !== 'host') && (ns !== 'net' || o.network.mode !== 'host')),
    // The root, and an image's layers under it, are nodev: a device node the
    // rootfs or an image layer ships (unpacked as root, or made by a
    // previous writable-rootfs run) never opens, whether the container is
    // host root (--userns host) or writes into the directory itself (a plain
    // bind, which keeps the host mount's dev). The container's devices are
    // /dev's, each bound on its own (systemMounts). OCI bundles decide this
    // themselves (ts/oci/plan.ts), from their device rules.
    rootfs: { kind: 'path', path: rootfs, mode, idmap: rootfsIdmap(o, mode, ctx.idmap && !hostRoot), nodev: true, ...(ctx.layers?.length ? { layers: [...ctx.layers] } : {}) },
    rootfsPropagation: o.rootfsPropagation,
    storageSize: o.storageSize ?? defaultStorageSize(),
    mounts: cgroupMountsLast(mounts),
    init: o.init,
    maps: ctx.maps ?? { writer: 'none' },
    cgroup: ctx.cgroupPhase ?? { how: 'none' },
    ...(ctx.cgroupKept?.length ? { cgroupKept: [...ctx.cgroupKept] } : {}),
    ...(ctx.usageFiles?.length ? { usageFiles: [...ctx.usageFiles] } : {}),
    ...(ctx.expectedProcess ? { expectedProcess: ctx.expectedProcess } : {}),
    // Phase `network`: a bridged container's interfaces are Node's to make (ts/network).
    network: o.network.mode === 'bridge' ? 'node' : 'loopback',
    trace: o.trace,
    traceT0Ns: Number(ctx.traceT0Ns),
    parentPid: process.pid,
    detach: ctx.detach ?? false,
    control: ctx.control ?? null,
    join: o.network.mode === 'ns' || o.network.mode === 'container' ? [{ ns: 'net', path: ctx.netnsPath ?? (o.network.mode === 'ns' ? o.network.path : '') }] : [],
    sysctl: [],
    console: null,
    time: null,
    domainname: null,
    reparent: false, createContainerHooks: null,
      runtimeHooks: false,
      seccompListener: null,
    ...(ctx.logMaxSize ? { logMaxSize: ctx.logMaxSize } : {}),
  };
  return { sandbox, process: buildProcessPlan(command, o, ctx.hostname, ctx.seccomp) };
}

/** The ProcessPlan of `command` with options `o`: a container's first process, or one exec'd into it. */
export function buildProcessPlan(command: string[], o: ResolvedOptions, hostname: string, seccomp: SeccompCompiler): ProcessPlan {
  return planFor(processTemplate(o, seccomp), command, hostname);
}

/**
 * A ProcessPlan without what differs from one sandbox and one call to the
 * next (the command, and the HOSTNAME variable, which is the sandbox's):
 * everything `o` decides, built once. A pool keeps one per set of call
 * options (ts/pool); planFor() makes each call's plan from it.
 */
export interface ProcessTemplate {
  /** The plan's fields but argv and env. */
  readonly rest: Readonly<Omit<ProcessPlan, 'argv' | 'env'>>;
  /** The environment, with HOSTNAME's value left empty where planFor() puts the sandbox's. */
  readonly env: readonly string[];
  /** Where HOSTNAME is in `env`; null when the options set it themselves. */
  readonly hostnameAt: number | null;
  /** The stack rlimit the command's argv and env must fit in (see checkArgSize). */
  readonly stackLimit: number | null;
}

export function processTemplate(o: ResolvedOptions, seccomp: SeccompCompiler): ProcessTemplate {
  // HOME comes from the container's /etc/passwd, resolved by the helper.
  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOSTNAME', ''],
  ]);
  // A terminal's type, as Docker sets it with -t: the caller's, else xterm.
  if (o.tty) env.set('TERM', process.env.TERM || 'xterm');
  for (const [k, v] of Object.entries(o.env ?? {})) env.set(k, v);
  // A variable keeps its first place when set again: HOSTNAME stays second.
  const hostnameAt = o.env !== undefined && Object.hasOwn(o.env, 'HOSTNAME') ? null : 1;
  return {
    env: [...env].map(([k, v]) => `${k}=${v}`),
    hostnameAt,
    stackLimit: stackLimit(o),
    rest: {
      cwd: o.cwd,
      user: { user: o.user?.split(':')[0] ?? '0', group: o.user?.split(':')[1] ?? null, additionalGroups: o.groupAdd },
      // An allowlisted container, or one on the host's network as the host's
      // root, has no raw sockets (ts/config/capabilities.ts).
      capabilities: keptCapabilities(o.allow.length > 0 || hostNetworkAsRoot(o) ? withoutEgressRefused(effectiveCapabilities(o.capAdd, o.capDrop)) : effectiveCapabilities(o.capAdd, o.capDrop)),
      noNewPrivileges: o.noNewPrivileges,
      rlimits: Object.entries({ ...DEFAULT_ULIMITS, ...o.ulimits }).map(([name, l]) => ({ name, soft: l.soft, hard: l.hard })),
      seccomp: seccompProgram(o.seccomp, seccomp),
      tty: o.tty ? { rows: o.ttySize?.rows ?? 24, cols: o.ttySize?.cols ?? 80 } : null,
      trace: o.trace,
      umask: null,
      personality: null,
      ioPriority: null,
      scheduler: null,
      startContainerHooks: null,
      memoryPolicy: null,
      seccompAgent: null,
    },
  };
}

/**
 * The ProcessPlan of `command` in the sandbox called `hostname`, from a
 * template. The plan's own fields are new (argv, env); the rest are the
 * template's, shared, and only ever read (a pool freezes its templates).
 */
export function planFor(t: ProcessTemplate, command: string[], hostname: string): ProcessPlan {
  const env = [...t.env];
  if (t.hostnameAt !== null) env[t.hostnameAt] = `HOSTNAME=${hostname}`;
  checkArgSize(command, env, t.stackLimit);
  return { ...t.rest, argv: [...command], env };
}

/** Docker's sets for a list of kept capabilities: bounding, permitted and effective; no inheritable or ambient ones. */
function keptCapabilities(names: string[] | null): Capabilities | null {
  return names === null ? null : { bounding: names, effective: [...names], permitted: [...names], inheritable: [], ambient: [] };
}

/**
 * The helper places the child in its cgroup while the child mounts, and the
 * child waits for that before its first mount on /sys/fs/cgroup (the cgroupfs
 * must show its cgroup namespace). So everything that touches that path or
 * its parents goes last, in its own order; the rest keeps its order.
 */
export function cgroupMountsLast(mounts: PlanMount[]): PlanMount[] {
  const related = (t: string) => t === CGROUP_MOUNTPOINT || t.startsWith(`${CGROUP_MOUNTPOINT}/`) || CGROUP_MOUNTPOINT.startsWith(t === '/' ? '/' : `${t}/`);
  const first = mounts.findIndex((m) => m.target === CGROUP_MOUNTPOINT);
  if (first < 0) return mounts;
  const rest = mounts.slice(first);
  return [...mounts.slice(0, first), ...rest.filter((m) => !related(m.target)), ...rest.filter((m) => related(m.target))];
}

const CGROUP_MOUNTPOINT = '/sys/fs/cgroup';

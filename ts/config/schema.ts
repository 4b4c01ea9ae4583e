/**
 * The one schema for tsbox's options: the API takes them, the CLI's flags are
 * parsed into them, and nothing else checks them again. Each problem is
 * reported with its JSON path.
 */
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { types } from 'node:util';

import * as z from 'zod/mini';

import { TsboxError } from '../errors.js';
import { didYouMean } from '../suggest.js';
import './locale.js';
import { egressRefusedCapability, hostNetworkAsRoot, normalizeCapability } from './capabilities.js';
import { mountSchema, tmpfsSchema, volumeSchema } from './mounts.js';
import { seccompOptionSchema } from './seccomp.js';
import { PRESETS, type PresetName } from './presets.js';
import { byteSize, cgroupLimitFields, crossLimitIssues, positiveSize, type CgroupLimits } from '../cgroups/limits.js';
import { lazyStrictObject, NOT_TAKEN, once, optional, withDefault, type LazyInput, type LazyOutput } from './lazy.js';
import { parseMapping } from './idmapping.js';
import { MAX_EXPOSED_RANGE, parseAllow, parseExpose, parseNetwork, parsePublish } from './network.js';

/** The name of the signal `v` gives (`SIGTERM`, `usr1`, `15`), or null when Node knows none by it (stopSignal's rule). */
export function signalName(v: string | number): NodeJS.Signals | null {
  const text = String(v).trim().toUpperCase();
  const signals = osConstants.signals as Record<string, number>;
  const byNumber = /^\d+$/.test(text) ? Object.keys(signals).find((k) => signals[k] === Number(text)) : undefined;
  const name = byNumber ?? (text.startsWith('SIG') ? text : `SIG${text}`);
  return signals[name] === undefined ? null : (name as NodeJS.Signals);
}

const absolutePath = once(() =>
  z.string().check(
    z.minLength(1),
    z.refine((p) => p.startsWith('/'), { message: 'must be an absolute path (start with /)' }),
    z.refine((p) => !p.includes('\0'), { message: 'must not contain a NUL byte' }),
  ),
);

/** RFC 1123 host name: labels of letters, digits and hyphens, at most 64 bytes (the kernel's limit). */
/** An IPv4 or IPv6 address. */
const ipAddress = once(() => z.string().check(z.refine((a) => isIP(a) !== 0, { message: 'is not an IP address' })));

/** `NAME:IP` (or `NAME=IP`), as Docker's --add-host; the IP may be IPv6. */
const hostEntry = once(() =>
  z.string().check(
    z.refine(
      (e) => {
        const m = /^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)[:=](.+)$/.exec(e);
        return m !== null && isIP(m[3]!.replace(/^\[|\]$/g, '')) !== 0;
      },
      { message: 'must be NAME:IP, such as db:10.0.0.2 or db:fd00::2' },
    ),
  ),
);

const hostname = once(() =>
  z.string().check(
    z.minLength(1),
    z.maxLength(64),
    z.regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, {
      message: 'must be letters, digits, hyphens and dots, starting and ending with a letter or digit',
    }),
  ),
);

const ENV_NAME = /^[^=\0]+$/;
const envName = once(() => z.string().check(z.regex(ENV_NAME, { message: 'an environment variable name must be non-empty, without = or NUL' })));

/**
 * `env` as its schema would return it, without building the schema (a
 * record, a regex and a refinement: ~1.5-2 ms of a CLI start, cold, for
 * every `-e` and every image with an Env): a plain object whose own keys
 * are all enumerable data properties named as envName says, with string
 * values without NUL, copied in the same order. Anything else (a getter,
 * a symbol, __proto__, a Proxy, a bad name or value) goes to the schema.
 */
function acceptEnv(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || types.isProxy(v) || Object.getPrototypeOf(v) !== Object.prototype) return NOT_TAKEN;
  const out: Record<string, string> = {};
  for (const k of Reflect.ownKeys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k);
    if (typeof k !== 'string' || k === '__proto__' || !ENV_NAME.test(k) || !d?.enumerable) return NOT_TAKEN;
    // A getter's descriptor has no value: left to the schema, never called here.
    if (typeof d.value !== 'string' || d.value.includes('\0')) return NOT_TAKEN;
    out[k] = d.value;
  }
  return out;
}

const capability = once(() =>
  z.string().check(
    z.refine((c) => normalizeCapability(c) !== undefined, {
      message: 'unknown capability (names such as NET_ADMIN or CAP_NET_ADMIN, or ALL)',
    }),
  ),
);

/** A string parsed inside the schema: `parse` returns undefined for a bad one, reported as `message(s)`. */
const parsed = <T>(parse: (s: string) => T | undefined, message: (s: string) => string) =>
  z.pipe(
    z.string(),
    z.transform((s: string, ctx): T => {
      const v = parse(s);
      if (v !== undefined) return v;
      ctx.issues.push({ code: 'custom', message: message(s), input: s });
      return z.NEVER;
    }),
  );

const nonNegativeInt = () => z.number().check(z.int(), z.gte(0));

/** `CONTAINER:HOST:SIZE` strings or objects. */
const idMapping = once(() =>
  z.union([
    parsed(parseMapping, (s) => `"${s}" is not CONTAINER:HOST:SIZE with SIZE ≥ 1`),
    z.strictObject({ containerId: nonNegativeInt(), hostId: nonNegativeInt(), size: z.number().check(z.int(), z.gte(1)) }),
  ]),
);

/**
 * (uid_t)-1: setresuid and setresgid read it as "leave unchanged", so a
 * process told to become it keeps the ids it has (host root, on the exec
 * path). Never a valid id; the helper refuses it from /etc/passwd too.
 */
const UNCHANGED_ID = 4294967295;
const validNumericId = (part: string) => !/^\d+$/.test(part) || Number(part) < UNCHANGED_ID;
const idMessage = `a numeric id must be below ${UNCHANGED_ID} ((uid_t)-1 means "leave unchanged" to the kernel)`;

/** `uid[:gid]` or `name[:group]`, as Docker's --user. */
const userSpec = once(() =>
  z.string().check(
    z.regex(/^[^:\s]+(:[^:\s]+)?$/, { message: 'must be USER[:GROUP], each a name or a number' }),
    z.refine((s) => s.split(':').every(validNumericId), { message: idMessage }),
  ),
);
/** A supplementary group: a name or a gid. */
const groupSpec = once(() => z.string().check(z.minLength(1), z.refine(validNumericId, { message: idMessage })));

/** A detached container's log limit per file when `logMaxSize` is not given (32 MiB). */
export const DEFAULT_LOG_MAX_SIZE = 32 * 1024 * 1024;

/** When an image is pulled (podman's `--pull`): when the store lacks it, always, or never. */
export const PULL_POLICIES = ['missing', 'always', 'never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** Every RLIMIT_* the kernel has, by its lowercase name. */
export const RLIMIT_NAMES = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'] as const;

const unlimited = () => null;
const limitNumber = once(() => z.union([z.pipe(z.literal(-1), z.transform(unlimited)), z.pipe(z.literal('unlimited'), z.transform(unlimited)), nonNegativeInt()]));
/** `soft[:hard]`, each a number, -1 or `unlimited`; undefined when it is not. */
function parseUlimit(s: string): { soft: number | null; hard: number | null } | undefined {
  const parts = s.split(':');
  const one = (p: string | undefined) => (p === 'unlimited' || p === '-1' ? null : p !== undefined && /^\d+$/.test(p) ? Number(p) : undefined);
  const soft = one(parts[0]);
  const hard = parts.length > 1 ? one(parts[1]) : soft;
  return parts.length > 2 || soft === undefined || hard === undefined ? undefined : { soft, hard };
}
/** `1024`, `{ soft, hard }` or `'soft[:hard]'`, each a number, -1 or `unlimited`; a single value sets both. */
const ulimitValue = once(() =>
  z
    .union([
      z.pipe(limitNumber(), z.transform((n: number | null) => ({ soft: n, hard: n }))),
      z.strictObject({ soft: limitNumber(), hard: limitNumber() }),
      parsed(parseUlimit, (s) => `"${s}" is not SOFT[:HARD] (numbers, -1 or unlimited)`),
    ])
    .check(z.refine((l) => (l.soft === null ? l.hard === null : l.hard === null || l.soft <= l.hard), { message: 'the soft limit must not be above the hard one' })),
);

export const stdioSchema = once(() => z.enum(['inherit', 'pipe', 'ignore']));

/** Each option's schema, built when the option is first given (ts/config/lazy.ts). */
export const runOptionFields = {
  /**
   * The container's root filesystem: a directory on the host. Without it, the
   * host's own root is used read-only, with a fresh /proc, a minimal /dev and
   * tmpfs /tmp and /run.
   */
  rootfs: optional(() => z.string().check(z.minLength(1), z.refine((p) => !p.includes('\0'), { message: 'must not contain a NUL byte' }))),
  /**
   * An image to run instead of a rootfs directory: `alpine`, `alpine:3.20`,
   * `localhost:5000/app@sha256:...` (Docker's short names). Its layers,
   * unpacked once in the store, are the container's root under a throwaway
   * layer; its config gives the command, env, user and working directory
   * the options do not.
   */
  image: optional(() => z.string().check(z.minLength(1), z.maxLength(4096))),
  /**
   * The signal `stop` sends first (Docker's `--stop-signal`, an image's
   * StopSignal): `SIGTERM` (the default), `USR1`, `15`.
   */
  stopSignal: optional(() =>
    z.pipe(
      z.union([z.string(), z.number()]),
      z.transform((v: string | number, ctx) => {
        const name = signalName(v);
        if (name === null) {
          ctx.issues.push({ code: 'custom', input: v, message: `"${String(v)}" is not a signal (SIGTERM, USR1, 15, ...)` });
          return z.NEVER;
        }
        return name;
      }),
    ),
  ),
  /** When to pull `image`: when it is not in the store (default), always, or never (podman's `--pull`). */
  pull: optional(() => z.enum(PULL_POLICIES)),
  /** Replaces the image's Entrypoint (Docker's `--entrypoint`); the image's Cmd then goes too unless a command is given. */
  entrypoint: optional(() => z.array(z.string().check(z.refine((a) => !a.includes('\0'), { message: 'must not contain a NUL byte' })))),
  /** The container's host name. Default: 12 hex digits of the container id, as Docker. */
  hostname: optional(() => hostname()),
  /** More lines of the container's /etc/hosts, as Docker's `--add-host NAME:IP`. */
  addHost: withDefault([], () => z.array(hostEntry())),
  /** The nameservers of the container's /etc/resolv.conf, instead of the host's (IP addresses). */
  dns: withDefault([], () => z.array(ipAddress())),
  /** The search domains of the container's /etc/resolv.conf, instead of the host's. */
  dnsSearch: withDefault([], () => z.array(hostname())),
  /**
   * The container's network (Docker's `--network`): `none` (default: its
   * own namespace with only loopback), `host` (the host's network
   * namespace: every interface and port of the host), `bridge` (as root:
   * an address on tsbox's bridge `tsbox0`, NAT to the host's uplink,
   * through the CNI plugins; as an ordinary user: pasta), `ns:PATH` (join that network namespace) or
   * `container:NAME` (share a running tsbox container's).
   */
  network: withDefault({ mode: 'none' as const }, () => parsed(parseNetwork, (s) => `"${s}" is not a network: none, host, bridge, ns:PATH or container:NAME`)),
  /** Ports published on the host, `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]` (Docker's `-p`); needs network `bridge`. */
  publish: withDefault([], () => z.array(parsed(parsePublish, (s) => `"${s}" is not [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`))),
  /**
   * Ports the container exposes, `PORT[/tcp|udp]` or `FIRST-LAST[/tcp|udp]`
   * (Docker's `--expose`), added to an image's ExposedPorts: what
   * `publishAll` publishes.
   */
  expose: withDefault([], () => z.array(parsed(parseExpose, (s) => `"${s}" is not PORT[/tcp|udp] or FIRST-LAST[/tcp|udp] (at most ${MAX_EXPOSED_RANGE} ports)`))),
  /**
   * Publishes every exposed port (`expose`, and an image's ExposedPorts)
   * not published by `publish` on a free host port of every IPv4 address,
   * one the kernel picks from net.ipv4.ip_local_port_range (Docker's `-P`);
   * the ports chosen are in the container's network info. Needs network `bridge`.
   */
  publishAll: withDefault(false, () => z.boolean()),
  /**
   * An egress allowlist for a bridged container (`--allow-host`,
   * `--allow-net`): `NAME[:PORT]` (the addresses tsbox's resolver for the
   * container returns for that name, which answers no other name) or
   * `A.B.C.D[/BITS][:PORT]`. Everything else outbound is refused at once
   * (TCP reset, ICMP port unreachable), UDP and ICMP included, but DNS to
   * that resolver. As root attached or detached; an ordinary user's (pasta) attached for now.
   */
  allow: withDefault([], () => z.array(parsed(parseAllow, (s) => `"${s}" is not NAME[:PORT] or A.B.C.D[/BITS][:PORT]`))),
  /** The size of /dev/shm (Docker's `--shm-size`). Default 64m. */
  shmSize: optional(() => positiveSize()),
  /** Environment of the command, added to PATH, HOSTNAME and HOME. */
  env: optional(() => z.record(envName(), z.string().check(z.refine((v) => !v.includes('\0'), { message: 'must not contain a NUL byte' }))), acceptEnv),
  /** Working directory inside the container. Default `/`. */
  cwd: withDefault('/', () => absolutePath()),
  /**
   * Outlive the caller (`tsbox run -d`): the container's monitor leaves the
   * caller's process tree and keeps the container, its output goes to a log
   * in its state directory, and `open()`/`tsbox exec`, `stop`, `rm` reach it
   * from any process. The handle does not keep Node running (its `wait()`
   * does, when called). Default: the container dies with its caller.
   */
  detach: withDefault(false, () => z.boolean()),
  /**
   * The most a detached container's log (`tsbox logs`) keeps per file: past
   * it the file becomes `container.log.1` (replacing the one before) and a
   * new one starts, as Docker's json-file log with `max-size` and
   * `max-file=2`. The log is in the state directory, /run, which is memory:
   * a noisy container never takes more than twice this. `512k`, `64m`, or
   * bytes; 0: no limit. Default 32m.
   */
  logMaxSize: optional(() => byteSize()),
  /** A name for the container, unique among the containers that have state (`tsbox ps -a`). */
  name: optional(() => z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, { message: 'must be letters, digits, _, . and -, starting with a letter or digit (at most 128)' }))),
  /** Run tsbox's minimal init as PID 1 (default), or make the command PID 1 (`false`). */
  init: withDefault(true, () => z.boolean()),
  /** Print every setup step with its time offset to stderr. */
  trace: withDefault(false, () => z.boolean()),
  /** stdin, stdout and stderr of the command: passed through, piped, or ignored. */
  stdio: withDefault('pipe', () => z.union([stdioSchema(), z.tuple([stdioSchema(), stdioSchema(), stdioSchema()])])),
  /**
   * Shift the rootfs's ids into the container's range (an idmapped mount),
   * so host root's files are container root's. Default: on for the
   * throwaway overlay and a read-only root (nothing reaches the directory),
   * off with `writableRootfs`, where files container root makes would be
   * host root's (`--rootfs DIR:idmap` asks for it).
   */
  rootfsIdmap: optional(() => z.boolean()),
  /**
   * Bytes the container may write outside its volumes and tmpfs mounts: the
   * overlay's upper layer, and a read-only root's /tmp and /run, together.
   * They live in memory (and count against `memory`), so they are bounded:
   * default the smaller of 1 GiB and an eighth of the host's RAM. `64m`,
   * `2g`, or a number of bytes (`--storage-opt size=`, as Docker's).
   */
  storageSize: optional(() => positiveSize()),
  /** A read-only root, with tmpfs /tmp and /run. (Without a rootfs the root is always read-only.) */
  readOnly: withDefault(false, () => z.boolean()),
  /**
   * Write directly into the rootfs directory (an OCI bundle's semantics). By
   * default the rootfs is never modified: writes go to a throwaway overlay layer.
   */
  writableRootfs: withDefault(false, () => z.boolean()),
  /**
   * Host paths bound into the container: `HOST:CONTAINER[:ro|rw]` or
   * `{ source, target, readonly }`. Every bind is nodev, as bubblewrap's
   * `--bind`: a device node under it does not open (the container's devices
   * are its /dev's). A volume whose host path is itself a device
   * (`/dev/kvm:/dev/kvm`, as Docker's `--device`) is that device, and opens.
   */
  volumes: withDefault([], () => z.array(volumeSchema())),
  /** tmpfs mounts: `PATH[:size=64m,mode=1777]` or `{ target, size, mode }`. */
  tmpfs: withDefault([], () => z.array(tmpfsSchema())),
  /** Docker `--mount` specs (`type=bind,source=..,target=..,readonly`) or objects; a bind is nodev, as a volume's. */
  mounts: withDefault([], () => z.array(mountSchema())),
  /** Paths hidden from the container. Default: the OCI list (/proc/kcore, /sys/firmware, ...). */
  maskedPaths: optional(() => z.array(absolutePath())),
  /** Paths made read-only. Default: the OCI list (/proc/sys, /proc/bus, ...). */
  readonlyPaths: optional(() => z.array(absolutePath())),
  /** The user to run as: `uid[:gid]` or `name[:group]`, resolved in the rootfs's /etc/passwd and /etc/group. Default root. */
  user: optional(() => userSpec()),
  /** More supplementary groups (names or gids). */
  groupAdd: withDefault([], () => z.array(groupSpec())),
  /** Capabilities to add to the default set (`NET_ADMIN`, `CAP_SYS_PTRACE`, `ALL`). */
  capAdd: withDefault([], () => z.array(capability())),
  /** Capabilities to drop from the default set (`ALL` for every one). */
  capDrop: withDefault([], () => z.array(capability())),
  /**
   * The seccomp filter: `default` (tsbox's allowlist, with contained.c's
   * rules), `unconfined`, the path of an OCI `linux.seccomp` profile (JSON),
   * or such a profile as an object.
   */
  seccomp: withDefault('default', () => seccompOptionSchema()),
  /** Set no_new_privs, so that setuid binaries and file capabilities gain nothing. Default true. */
  noNewPrivileges: withDefault(true, () => z.boolean()),
  /**
   * `private` (default): a new user namespace. `host`: share the host's — the
   * container's root is then the host's real root.
   */
  userns: withDefault('private', () => z.enum(['private', 'host'])),
  /** Explicit uid map lines; as a non-root caller they go through newuidmap. */
  uidMap: optional(() => z.array(idMapping()).check(z.minLength(1))),
  /** Explicit gid map lines; as a non-root caller they go through newgidmap. */
  gidMap: optional(() => z.array(idMapping()).check(z.minLength(1))),
  /**
   * Give the command a pseudo-terminal (its stdin, stdout and stderr, and its
   * controlling terminal); the container's `stdin`/`stdout` are then the
   * terminal's master and `stderr` is null.
   */
  tty: withDefault(false, () => z.boolean()),
  /** The terminal's size with `tty`. Default 80x24; `resize()` changes it. */
  ttySize: optional(() => z.strictObject({ cols: z.number().check(z.int(), z.gte(1), z.lte(65535)), rows: z.number().check(z.int(), z.gte(1), z.lte(65535)) })),
  /** Kill the container (SIGKILL) after this many milliseconds; the result then says `timedOut`. */
  timeout: optional(() => z.number().check(z.int(), z.positive())),
  // Resource limits (cgroups): memory, memorySwap, memoryReservation, cpus,
  // cpuShares, cpuQuota, cpuPeriod, cpusetCpus, cpusetMems, pidsLimit (default
  // 4096, or pid_max/16 when smaller; -1 for none), blkioWeight, deviceReadBps/WriteBps/ReadIops/WriteIops.
  ...cgroupLimitFields,
  /** The cgroup to create the container's under (e.g. `/tsbox.slice`). Default: beside the caller's. */
  cgroupParent: optional(() => absolutePath().check(z.refine((p) => !p.split('/').includes('..'), { message: 'must not contain ..' }))),
  /**
   * Resource limits of the process (setrlimit): `{ nofile: 1024 }`,
   * `{ nofile: { soft: 1024, hard: 4096 } }` or `'1024:4096'`; -1 or
   * `unlimited` for none. Default: the caller's, with no core dumps (core 0).
   */
  ulimits: withDefault({}, () => z.partialRecord(z.enum(RLIMIT_NAMES), ulimitValue())),
  /**
   * Start from a preset; the other options override it. `contained`: the
   * choices of contained.c, the 500-line container program tsbox grew
   * from (memory 1 GiB, cpu shares 256, pids 64, blkio weight 10, NOFILE
   * 64, container 0 → host 10000 range 2000, its capability drops and
   * seccomp rules, no_new_privs off).
   */
  preset: optional(() => z.enum(['contained'])),
  /** Propagation of the container's mounts (OCI `rootfsPropagation`). Default `private`. */
  rootfsPropagation: withDefault('private', () => z.enum(['private', 'slave', 'shared', 'unbindable'])),
};

/** The options' schema: {@link runOptionFields} as a strict object, with the checks across fields. */
export const runOptionsSchema = lazyStrictObject(runOptionFields, (o, ctx) => {
  // The limits' checks that involve more than one field (memorySwap ≥ memory, ...);
  // each field's own check ran with the field.
  for (const i of crossLimitIssues(o)) ctx.addIssue({ code: 'custom', path: [i.path], message: i.message });
  if (o.readOnly && o.writableRootfs) {
    ctx.addIssue({ code: 'custom', path: ['writableRootfs'], message: 'cannot be combined with readOnly (--read-only)' });
  }
  if ((o.uidMap === undefined) !== (o.gidMap === undefined)) {
    // A missing one would map container root to the caller: host root, as root.
    ctx.addIssue({ code: 'custom', path: [o.uidMap ? 'gidMap' : 'uidMap'], message: 'uidMap and gidMap (--uidmap, --gidmap) go together: give both' });
  }
  if (o.userns === 'host' && (o.uidMap || o.gidMap)) {
    ctx.addIssue({ code: 'custom', path: [o.uidMap ? 'uidMap' : 'gidMap'], message: "cannot be combined with userns 'host' (no user namespace, no maps)" });
  }
  if (o.image !== undefined && o.rootfs !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['image'], message: 'cannot be combined with rootfs: the image is the root filesystem' });
  }
  if ((o.pull !== undefined || o.entrypoint !== undefined) && o.image === undefined) {
    ctx.addIssue({ code: 'custom', path: [o.pull !== undefined ? 'pull' : 'entrypoint'], message: 'needs an image' });
  }
  if (o.publish.length > 0 && o.network.mode !== 'bridge') {
    ctx.addIssue({ code: 'custom', path: ['publish'], message: `publishes ports of a container on network "bridge", not "${o.network.mode}"` });
  }
  if (o.publishAll && o.network.mode !== 'bridge') {
    ctx.addIssue({ code: 'custom', path: ['publishAll'], message: `publishes the exposed ports of a container on network "bridge", not "${o.network.mode}"` });
  }
  if (o.allow.length > 0 && o.network.mode !== 'bridge') {
    ctx.addIssue({ code: 'custom', path: ['allow'], message: `an egress allowlist is for a container on network "bridge", not "${o.network.mode}"` });
  }
  const refusedCap = o.allow.length > 0 ? egressRefusedCapability(o.capAdd) : null;
  if (refusedCap !== null) {
    ctx.addIssue({ code: 'custom', path: ['capAdd'], message: `"${refusedCap}" cannot be added to a container with an egress allowlist: CAP_NET_RAW and CAP_NET_ADMIN would let it send around the allowlist's rules` });
  }
  const hostNetCap = hostNetworkAsRoot(o) ? egressRefusedCapability(o.capAdd) : null;
  if (hostNetCap !== null) {
    ctx.addIssue({ code: 'custom', path: ['capAdd'], message: `"${hostNetCap}" cannot be added with network "host" and userns "host": it would be the host's own CAP_NET_RAW or CAP_NET_ADMIN, over the host's interfaces and firewall` });
  }
  if (o.writableRootfs && o.rootfs === undefined) {
    ctx.addIssue({ code: 'custom', path: ['writableRootfs'], message: "needs a rootfs: the host's root is never writable" });
  }
});

/** The keys of the resource limits, as they appear among the options. */
export const LIMIT_KEYS = Object.keys(cgroupLimitFields) as (keyof typeof cgroupLimitFields)[];

/** The cgroup limits among `o`. */
export function limitsOf<T extends Record<string, unknown>>(o: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of LIMIT_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/**
 * The limits of options this schema resolved: parsed already, as parseLimits
 * would give them (the same fields, defaults and checks across fields;
 * test/unit/config.test.ts compares the two).
 */
export function resolvedLimitsOf(o: ResolvedOptions): CgroupLimits {
  return limitsOf(o) as CgroupLimits;
}

export type RunOptions = LazyInput<typeof runOptionFields>;
export type ResolvedOptions = LazyOutput<typeof runOptionFields>;

export const commandSchema = once(() =>
  z
    .array(z.string().check(z.refine((a) => !a.includes('\0'), { message: 'must not contain a NUL byte' })), {
      message: 'the command must be an array of strings',
    })
    .check(z.minLength(1, { message: 'the command is empty: give the program to run and its arguments' })),
);

/** A preset's options under the given ones. */
function withPreset(options: unknown): unknown {
  if (typeof options !== 'object' || options === null) return options;
  const name = (options as { preset?: unknown }).preset;
  if (typeof name !== 'string' || !(name in PRESETS)) return options;
  return { ...PRESETS[name as PresetName](), ...options };
}

/** Formats a JSON path the way the docs write them: `env.FOO`, `stdio[1]`. */
function jsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(options)';
}

/** A problem with the value it is about, when the message does not show it: `"NET_ADMINN": unknown capability`. */
function withValue(message: string, input: unknown): string {
  if (typeof input !== 'string' && typeof input !== 'number' && typeof input !== 'boolean') return message;
  const shown = JSON.stringify(input);
  // Already there as a value of its own (not as a part of another: the 1 in 6291456).
  const escaped = String(input).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (shown.length > 80 || new RegExp(`(^|[^\\w.])${escaped}($|[^\\w.])`).test(message)) return message;
  return `${shown}: ${message}`;
}

/**
 * The options of a container of an image, checked before the image is
 * pulled (a bad option is refused before the registry is asked); its
 * command may be the image's, unknown until then.
 */
export function checkImageRunInput(command: readonly string[], options: unknown): void {
  parseRunInput(command.length > 0 ? command : ["(the image's)"], options);
}

/** Validates the command and options; throws one TsboxError listing every problem. */
export function parseRunInput(command: unknown, options: unknown): { command: string[]; options: ResolvedOptions } {
  const cmd = commandSchema().safeParse(command);
  const opts = runOptionsSchema.safeParse(withPreset(options ?? {}), { reportInput: true });
  const issues: { path: string; message: string }[] = [];
  if (!cmd.success) for (const i of cmd.error.issues) issues.push({ path: `command${jsonPath(i.path) === '(options)' ? '' : jsonPath(i.path)}`, message: i.message });
  if (!opts.success) {
    for (const i of opts.error.issues) {
      if (i.code === 'unrecognized_keys') {
        const at = jsonPath(i.path);
        const known = at === '(options)' ? runOptionsSchema.keys : at === 'ulimits' ? RLIMIT_NAMES : [];
        for (const k of i.keys) issues.push({ path: jsonPath([...i.path, k]), message: `unknown option${didYouMean(k, known)}` });
      } else if (i.code === 'invalid_union') {
        // The union's own word on what it takes, when it has one; else (a
        // string-or-object option) what the string parser said, if it spoke.
        const nested = i.errors.flat();
        const best = nested.find((n) => n.code === 'custom') ?? nested[0];
        const own = i.message !== 'Invalid input' ? i.message : undefined;
        issues.push({ path: jsonPath(i.path), message: withValue(own ?? best?.message ?? i.message, i.input) });
      } else if (i.code === 'invalid_key') {
        // zod 4 keeps the key's own problem in a nested list.
        issues.push({ path: jsonPath(i.path), message: i.issues[0]?.message ?? i.message });
      } else {
        issues.push({ path: jsonPath(i.path), message: withValue(i.message, i.input) });
      }
    }
  }
  if (issues.length > 0 || !cmd.success || !opts.success) throw configIssues(issues);
  return { command: cmd.data, options: opts.data };
}

/**
 * Validates a command alone, as parseRunInput does (the same error): for a
 * pool's call whose options were checked by an earlier call.
 */
export function parseCommand(command: unknown): string[] {
  const cmd = commandSchema().safeParse(command);
  if (cmd.success) return cmd.data;
  throw configIssues(cmd.error.issues.map((i) => ({ path: `command${jsonPath(i.path) === '(options)' ? '' : jsonPath(i.path)}`, message: i.message })));
}

/** One TsboxError listing every problem, the first as its path and detail. */
function configIssues(issues: { path: string; message: string }[]): TsboxError {
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1).map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
  return new TsboxError({ step: 'config', errno: 0, path: first.path, detail: `${first.message}${more}`, hint: null }, { issues });
}

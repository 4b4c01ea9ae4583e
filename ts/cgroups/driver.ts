/**
 * The driver: decides everything first (which hierarchy each controller is on,
 * the directories, the device numbers, every write), then creates
 * `<parent>/tsbox/<id>` in each hierarchy it uses, enables controllers on v2,
 * and writes the limits — all before the workload exists. Any failure removes
 * what this call created.
 */
import { existsSync, statSync } from 'node:fs';
import { posix } from 'node:path';

import type { CgroupStats, CgroupUsage, Controller, ControllerName, LimitWrite, StatReader } from './controller.js';
import { cpu, cpuStats, cpuThrottledPeriods } from './cpu.js';
import { CPUSET_INHERIT, cpuset } from './cpuset.js';
import { cgroupDir, parentPath, readLayout, readProcSource, type CgroupLayout, type CgroupMode, type ProcSource } from './detect.js';
import { delegatedParent, LEAF } from './delegation.js';
import type { TsboxError } from '../errors.js';
import { cgroupError, cgroupProblem, EACCES, EBUSY, EEXIST, EPERM, EINVAL, ENODEV, ENOENT, ENOSPC, ERANGE, errnoOf, ESRCH, readIfPresent, realFs, type CgroupFs } from './fs.js';
import { defaultStateDir, ID_PATTERN, readMarker, removeMarker, writeMarker, type Marker } from './gc.js';
import { processStart } from '../proc.js';
import { deviceKey, io, limitDevices, type LimitDevice } from './io.js';
import { DEFAULT_PIDS_LIMIT, parseLimits, type CgroupLimits, type CgroupLimitsInput } from './limits.js';
import { hugetlb } from './hugetlb.js';
import { memory, memoryStats, memoryUsage } from './memory.js';
import { netCls, netPrio } from './network.js';
import { pids, pidsPeak, pidsStats } from './pids.js';
import { defaultParents, knownRootDir, rootOwnedParents } from './root-parent.js';
import { stopScope, syncScope } from './systemd.js';
import { killCgroup, removeCgroup, removeParents, type Placement } from './teardown.js';

/** In the order their limits are written: cpuset first (on v1 it must be filled before a process may join). */
const CONTROLLERS: readonly Controller[] = [cpuset, memory, cpu, pids, io, hugetlb, netCls, netPrio];

export interface CreateOptions {
  /**
   * The cgroup to create `tsbox/<id>` under, as a cgroup path (as in
   * /proc/self/cgroup), e.g. `/tsbox.slice`; it must exist. Default: the
   * caller's own cgroup on v1; on v2 the caller's cgroup if it is the root,
   * else its parent (see parentPath in detect.ts). As root, a default that
   * is not root's own gives way to the root of the hierarchy
   * (root-parent.ts); a parent given here is taken as given.
   */
  parent?: string;
  /**
   * The container's cgroup itself, as a cgroup path (an OCI bundle's
   * `cgroupsPath`), instead of `<parent>/tsbox/<id>`: absolute from each
   * hierarchy's root, or relative to the parent. Missing ancestors are made
   * (and removed with it when empty); one that exists and has no process
   * is joined, and kept when the container goes.
   */
  path?: string;
  /**
   * `path` is this systemd scope's cgroup (systemd.ts): systemd makes it
   * (the caller starts the unit before create()), and the unit is stopped
   * with the container. Pure v2 only.
   */
  systemd?: string;
  /** Where the orphan markers live (gc.ts). Default: /run/tsbox/cgroups as root, $XDG_RUNTIME_DIR/tsbox/cgroups otherwise. */
  stateDir?: string;
  /** The process whose death makes the cgroup an orphan for gc(). Default: this process. */
  owner?: number;
  /** Called with one line per step, for --trace. */
  trace?: (line: string) => void;
  /** For tests: the filesystem to use. */
  fs?: CgroupFs;
  /**
   * Device rules (an OCI bundle's linux.resources.devices, with the default
   * devices after them), carried out once the container's cgroup exists and
   * before any process joins it: written in order to its v1 device cgroup
   * where the host has a v1 devices hierarchy; on a pure v2 host, which has
   * no device controller, as an eBPF device program attached to its cgroup
   * (the same rules, decided the same way: tsbox_core::devices). Root's
   * only: loading the program needs CAP_SYS_ADMIN (or CAP_BPF) in the
   * initial user namespace.
   */
  devices?: readonly DeviceRuleWrite[];
  /** For tests: the caller's uid (default: this process's). An ordinary user's v2 cgroups go under a delegated one (delegation.ts). */
  uid?: number;
  /** /proc/self/{mountinfo,cgroup} as already read (a launch reads them once; tests pass fixtures). */
  proc?: ProcSource;
}

/** One write of a v1 device cgroup: `a` or `c 1:3 rwm` to devices.allow or devices.deny (on v2, one rule of the device program). */
export interface DeviceRuleWrite {
  file: 'devices.allow' | 'devices.deny';
  value: string;
}

/** What createCgroup() wrote, for the outcome report. */
export interface AppliedLimits {
  mode: CgroupMode;
  /** The limits after parsing, defaults included. */
  limits: CgroupLimits;
  /** Every limit file written, in order, with the value. */
  writes: { path: string; value: string; limit: keyof CgroupLimits }[];
}

export interface Cgroup {
  readonly mode: CgroupMode;
  readonly id: string;
  /** The container's cgroup2 directory on a pure v2 host, for clone3's CLONE_INTO_CGROUP; null on v1 and hybrid (use place()). */
  readonly v2Path: string | null;
  /** The container's directory in each hierarchy: v1 names (`memory`, `cpu`, `cpuacct`, ...) and `unified`. */
  readonly paths: Readonly<Record<string, string>>;
  /** Moves `pid` (the whole process) into the container's cgroups: cgroup.procs of every hierarchy. */
  place(pid: number): void;
  /** Current usage; read it after the workload ended and before destroy(). */
  stats(): CgroupStats;
  /** What a result reports of stats(), read alone (fewer files: it is on every result's path). */
  usage(): CgroupUsage;
  /** The files usage() reads, in its order: tsbox-init's monitor reads them as the command ends (SandboxPlan.usageFiles). */
  readonly usageFiles: readonly string[];
  /** usage() from the contents of `usageFiles` read elsewhere (null: not readable). */
  usageFrom(texts: readonly (string | null)[]): CgroupUsage;
  /** Kills every process in the cgroups: cgroup.kill on v2; freeze, SIGKILL each, thaw on v1. */
  kill(): void;
  /** kill(), then rmdir the cgroups (leaves first, retrying EBUSY); the shared `tsbox` parents stay (gc removes empty ones). Idempotent. */
  destroy(): void;
  applied(): AppliedLimits;
  /** Hands the cgroup to another owner (a detached container's PID 1) so gc() keeps it while that process lives. */
  setOwner(pid: number): void;
}

interface Hier {
  parent: string;
  tsbox: string;
  leaf: string;
  /** An exact path (CreateOptions.path): the leaf's ancestors are made as needed, and `tsbox` is its parent. */
  exact?: boolean;
}

interface Plan {
  /** Leaves of an exact path that exist already: joined, never removed. */
  adopted: string[];
  versions: Map<ControllerName, 1 | 2>;
  /** By hierarchy: v1 names and `unified`. */
  hierarchies: Map<string, Hier>;
  /** v2 controllers to enable in the parent's and tsbox's cgroup.subtree_control. */
  enable: string[];
  writes: LimitWrite[];
  /** The caller's own v2 cgroup, delegated to it: its processes move to a leaf before controllers are enabled in it. */
  evacuate?: string;
  /** The leaf is this systemd scope's cgroup, which systemd makes (CreateOptions.systemd). */
  systemd?: string;
}

const noProcessesHint = (dir: string) =>
  `cgroup v2 lets a non-root cgroup enable controllers for its children only while it has no processes of its own ("no internal processes"), and ${dir} has some: pass a parent cgroup without processes (e.g. mkdir /sys/fs/cgroup/tsbox.slice and use /tsbox.slice), or move those processes to a leaf cgroup first (as systemd's DelegateSubgroup= does)`;

function splitList(text: string | null): string[] {
  return (text ?? '').trim().split(/\s+/).filter(Boolean);
}

/** major:minor of a limit's block device: given (checked to exist), or from stat's rdev (glibc's encoding). */
function deviceNumber(d: LimitDevice): string {
  if (d.path === undefined) {
    // The kernel's own name of a block device by number.
    const sys = `/sys/dev/block/${d.major}:${d.minor}`;
    if (!existsSync(sys)) throw cgroupProblem(sys, `there is no block device ${d.major}:${d.minor} on this host`, 'name a disk that exists (ls /sys/dev/block)', ENODEV);
    return `${d.major}:${d.minor}`;
  }
  const path = d.path;
  let st;
  try {
    st = statSync(path, { bigint: true });
  } catch (err) {
    throw cgroupError(err, path, 'stat the block device named in a device rate limit', 'name an existing block device, e.g. /dev/sda');
  }
  if (!st.isBlockDevice()) {
    throw cgroupProblem(path, 'not a block device: a device rate limit needs one', 'name a whole disk such as /dev/sda or /dev/nvme0n1 (not a partition, file or character device)', ENODEV);
  }
  const r = st.rdev;
  const major = ((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn);
  const minor = (r & 0xffn) | ((r >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function plan(id: string, l: CgroupLimits, layout: CgroupLayout, fs: CgroupFs, opts: CreateOptions): Plan {
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  // An ordinary user's cgroups go where they were delegated to it.
  let configured = opts.parent;
  let evacuate: string | undefined;
  if (configured === undefined && uid !== 0 && layout.mode === 'v2') {
    const d = delegatedParent(layout, fs, uid);
    configured = d.parent;
    if (d.evacuate) evacuate = cgroupDir(layout.unified!, d.parent);
  }
  const versions = new Map<ControllerName, 1 | 2>();
  const v2Candidates: Controller[] = [];
  for (const c of CONTROLLERS) {
    if (!c.required(l) && !c.stats) continue;
    if (layout.mode !== 'v2' && layout.v1.has(c.v1[0]!)) versions.set(c.name, 1);
    else if (c.v1Only !== undefined) {
      const limits = limitsOf(c, l);
      throw cgroupProblem(
        `/sys/fs/cgroup/${c.v1[0]}`,
        layout.mode === 'v2' ? `${limits} needs the v1 ${c.name} controller, and ${c.v1Only}` : `the ${c.name} controller is not mounted, and ${limits} needs it`,
        layout.mode === 'v2' ? `leave ${limits} out on this host` : `mount its v1 hierarchy (mount -t cgroup -o ${c.v1[0]} cgroup /sys/fs/cgroup/${c.v1[0]}) or leave ${limits} out`,
        ENOENT,
      );
    } else if (layout.unified && (layout.mode === 'v2' || layout.unifiedControllers.includes(c.name))) v2Candidates.push(c);
    else if (c.required(l)) {
      const limits = limitsOf(c, l);
      throw cgroupProblem(
        `/sys/fs/cgroup/${c.v1[0]}`,
        `the ${c.name} controller is not mounted, and ${limits} needs it`,
        `mount its v1 hierarchy (mount -t cgroup -o ${c.v1[0]} cgroup /sys/fs/cgroup/${c.v1[0]}) or leave ${limits} out`,
        ENOENT,
      );
    }
    // Otherwise it was wanted for statistics only, and those read as null.
  }

  // Root's default parent gives way to the hierarchy's root when a user
  // owns it (root-parent.ts); decided for every hierarchy in one batch.
  let rootDefaults: ReadonlyMap<string, string | TsboxError> | undefined;
  const defaultParent = (name: string): string => {
    if (uid !== 0 || configured !== undefined) return parentPath(layout, name, configured);
    rootDefaults ??= rootOwnedParents(defaultParents(layout), fs, opts.trace);
    const chosen = rootDefaults.get(name) ?? parentPath(layout, name);
    if (typeof chosen !== 'string') throw chosen;
    return chosen;
  };
  const hierarchies = new Map<string, Hier>();
  const add = (name: string, mount: { mountpoint: string; root: string }) => {
    if (opts.path !== undefined) {
      const path = opts.path.startsWith('/') ? opts.path : posix.join(defaultParent(name), opts.path);
      const leaf = cgroupDir(mount, path);
      if (leaf === mount.mountpoint) throw cgroupProblem(opts.path, 'is the root of the cgroup hierarchy, which the container cannot have as its own', 'give a cgroup below it, such as /tsbox/c1', EINVAL);
      hierarchies.set(name, { parent: posix.dirname(leaf), tsbox: posix.dirname(leaf), leaf, exact: true });
      return;
    }
    const parent = cgroupDir(mount, defaultParent(name));
    const tsbox = posix.join(parent, 'tsbox');
    hierarchies.set(name, { parent, tsbox, leaf: posix.join(tsbox, id) });
  };
  const checkParent = (dir: string) => {
    // An exact path's missing ancestors are made.
    if (opts.path !== undefined) return;
    // Root's default parent was just looked at (lstat) by rootOwnedParents.
    if (rootDefaults !== undefined && knownRootDir(fs, dir)) return;
    if (!fs.exists(dir)) {
      throw cgroupProblem(dir, 'the cgroup parent does not exist', opts.parent !== undefined ? 'create it first (mkdir under /sys/fs/cgroup), or leave the cgroup parent out' : null, ENOENT);
    }
  };

  if (Object.keys(l.unified ?? {}).length > 0 && layout.mode !== 'v2') {
    throw cgroupProblem('/sys/fs/cgroup', `limits.unified sets cgroup v2 files, and this host's cgroups are ${layout.mode} (its controllers are v1's)`, 'give the v1 limits instead (memory, cpuShares, pidsLimit, ...), or leave unified out', EINVAL);
  }
  let enable: string[] = [];
  if (v2Candidates.length > 0 || layout.mode === 'v2') {
    add('unified', layout.unified!);
    const declared = hierarchies.get('unified')!.parent;
    checkParent(declared);
    // An exact path's parent may not exist yet: what it will get is what its
    // nearest existing ancestor has.
    const parent = nearestExisting(declared, fs);
    const available = splitList(readIfPresent(fs, posix.join(parent, 'cgroup.controllers')));
    for (const c of v2Candidates) {
      if (available.includes(c.name)) versions.set(c.name, 2);
      else if (c.required(l)) {
        const limits = limitsOf(c, l);
        throw cgroupProblem(
          parent,
          `the ${c.name} controller is not available in ${parent} (its cgroup.controllers: ${available.join(' ') || 'none'}), and ${limits} needs it`,
          uid !== 0
            ? `have it delegated to your user (systemd: \`systemctl edit user@.service\` with [Service] Delegate=cpu cpuset io memory pids, then log in again), or leave ${limits} out`
            : `enable it in the parent's cgroup.subtree_control (echo +${c.name} > ${posix.dirname(parent)}/cgroup.subtree_control), or have it delegated (systemd: Delegate=${c.name}), or leave ${limits} out`,
          ENOENT,
        );
      }
    }
    const enabled = splitList(readIfPresent(fs, posix.join(parent, 'cgroup.subtree_control')));
    enable = CONTROLLERS.filter((c) => versions.get(c.name) === 2).map((c) => c.name);
    // The unified files' controllers are enabled too (cgroup.* files need none).
    for (const key of Object.keys(l.unified ?? {})) {
      const c = key.slice(0, key.indexOf('.'));
      if (c === 'cgroup' || enable.includes(c)) continue;
      if (!available.includes(c)) {
        throw cgroupProblem(parent, `limits.unified["${key}"] needs the ${c} controller, which is not available in ${parent} (its cgroup.controllers: ${available.join(' ') || 'none'})`, `enable it in the parent's cgroup.subtree_control, or leave ${key} out`, ENOENT);
      }
      enable.push(c);
    }
    // The root cgroup has no cgroup.type and is exempt from the rule.
    // (The caller's own delegated cgroup is emptied into a leaf first.)
    if (enable.some((c) => !enabled.includes(c)) && parent !== evacuate && fs.exists(posix.join(parent, 'cgroup.type'))) {
      const procs = splitList(readIfPresent(fs, posix.join(parent, 'cgroup.procs')));
      if (procs.length > 0) {
        throw cgroupProblem(parent, `cannot enable ${enable.join(', ')} for the containers: processes ${procs.slice(0, 5).join(', ')}${procs.length > 5 ? ', ...' : ''} are in this cgroup`, noProcessesHint(parent), EBUSY);
      }
    }
  }
  if (layout.mode !== 'v2') {
    for (const c of CONTROLLERS) {
      if (versions.get(c.name) !== 1) continue;
      for (const h of c.v1) {
        const mount = layout.v1.get(h);
        if (mount) add(h, mount);
      }
    }
    // The freezer lets teardown stop every process before it kills them.
    const freezer = layout.v1.get('freezer');
    if (freezer) add('freezer', freezer);
    // Every other hierarchy too (devices, blkio, cpuset, name=systemd, ...,
    // and a hybrid host's unified one): the container's cgroup namespace is
    // then rooted at a cgroup of its own in each, never at one it shares with
    // the host, which is what CVE-2022-0492's release_agent escape needs.
    for (const [name, mount] of layout.v1) if (!hierarchies.has(name)) add(name, mount);
    if (layout.unified && !hierarchies.has('unified')) add('unified', layout.unified);
    for (const [name, h] of hierarchies) if (name !== 'unified') checkParent(h.parent);
  }

  // Pure v2 carries the rules out with an eBPF program on the leaf.
  if (opts.devices && layout.mode !== 'v2' && !layout.v1.has('devices')) {
    throw cgroupProblem('/sys/fs/cgroup/devices', 'device rules need a v1 devices hierarchy, and this host has none', 'mount it (mount -t cgroup -o devices cgroup /sys/fs/cgroup/devices); tsbox uses an eBPF device filter instead on pure cgroup v2 hosts only', ENOENT);
  }
  const devices = new Map<string, string>();
  if (versions.has('io')) for (const d of limitDevices(l)) devices.set(deviceKey(d), deviceNumber(d));
  const writes = CONTROLLERS.filter((c) => versions.has(c.name)).flatMap((c) => c.writes(versions.get(c.name)!, l, devices));
  // The unified files last, so that they override (as runc and crun write them).
  for (const [file, value] of Object.entries(l.unified ?? {})) {
    writes.push({ hierarchy: 'unified', files: [{ file, value }], limit: 'unified', missingHint: `the kernel has no ${file} in the container's cgroup: check the name (ls the cgroup's directory) and that its controller is enabled` });
  }
  // An exact path that exists is joined when nothing is in it (a runtime
  // may refuse one that is not empty: the runtime-spec's cgroupsPath).
  const adopted: string[] = [];
  for (const h of new Set([...hierarchies.values()].filter((x) => x.exact).map((x) => x.leaf))) {
    if (!fs.exists(h)) continue;
    // Only a bare leaf: no process, no child cgroup, no controller enabled for
    // children. Anything else is someone's subtree (a slice of services),
    // which the container's limits and its teardown must never touch.
    const procs = splitList(readIfPresent(fs, posix.join(h, 'cgroup.procs')));
    if (procs.length > 0) throw cgroupProblem(h, `the cgroup exists and has processes (${procs.slice(0, 5).join(', ')})`, 'give a cgroup of the container\'s own, or an empty one', EBUSY);
    const children = fs.subdirs(h);
    if (children.length > 0) throw cgroupProblem(h, `the cgroup exists and has child cgroups (${children.slice(0, 5).join(', ')})`, 'give a cgroup of the container\'s own, or an empty leaf', EBUSY);
    if (splitList(readIfPresent(fs, posix.join(h, 'cgroup.subtree_control'))).length > 0) throw cgroupProblem(h, 'the cgroup exists and enables controllers for children of its own', 'give a cgroup of the container\'s own, or an empty leaf', EBUSY);
    adopted.push(h);
  }
  if (opts.systemd !== undefined && (layout.mode !== 'v2' || opts.path === undefined)) {
    throw cgroupProblem('/sys/fs/cgroup', `the systemd scope ${opts.systemd} needs pure cgroup v2 and its cgroup path, and this host's cgroups are ${layout.mode}`, 'leave out --systemd-cgroup on this host', EINVAL);
  }
  return { adopted, versions, hierarchies, enable, writes, ...(evacuate !== undefined ? { evacuate } : {}), ...(opts.systemd !== undefined ? { systemd: opts.systemd } : {}) };
}

/**
 * Moves every process of `dir` (the caller's own delegated cgroup, the
 * caller among them) to its leaf {@link LEAF}, so that controllers can be
 * enabled in it for the containers. Processes forked meanwhile land in
 * `dir` too: it is read again until it is empty.
 */
function evacuate(dir: string, fs: CgroupFs, trace?: (line: string) => void): void {
  const leaf = posix.join(dir, LEAF);
  if (mkdirShared(leaf, fs)) trace?.(`cgroup: mkdir ${leaf}`);
  const procs = posix.join(dir, 'cgroup.procs');
  for (let round = 0; round < 16; round++) {
    const pids = splitList(readIfPresent(fs, procs));
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        fs.write(posix.join(leaf, 'cgroup.procs'), pid);
      } catch (err) {
        if (errnoOf(err) === ESRCH) continue;
        throw cgroupError(err, leaf, `move process ${pid} out of the delegated cgroup ${dir}, whose controllers the containers need`, 'cgroup v2 lets a cgroup enable controllers for its children only while it has no processes of its own');
      }
    }
    trace?.(`cgroup: moved ${pids.length} process(es) of ${dir} to ${LEAF}`);
  }
  throw cgroupProblem(dir, 'processes keep appearing in the delegated cgroup while tsbox moves them to a leaf', 'run tsbox from a cgroup nothing else forks in, or pass a cgroup parent', EBUSY);
}

/** `dir` and its ancestors that do not exist, deepest first: what an exact path makes, and removes when empty. */
function missingAncestors(dir: string, fs: CgroupFs): string[] {
  const out: string[] = [];
  for (let d = dir; d !== '/' && !fs.exists(d); d = posix.dirname(d)) out.push(d);
  return out;
}

/** `dir`, or its nearest ancestor that exists. */
function nearestExisting(dir: string, fs: CgroupFs): string {
  let d = dir;
  while (d !== '/' && !fs.exists(d)) d = posix.dirname(d);
  return d;
}

/** The limits given that need controller `c`, for messages: `limits.memory, limits.memorySwap`. */
function limitsOf(c: Controller, l: CgroupLimits): string {
  return c.limits
    .filter((k) => l[k] !== undefined)
    .map((k) => (k === 'pidsLimit' && l.pidsLimit === DEFAULT_PIDS_LIMIT ? `limits.pidsLimit (default ${DEFAULT_PIDS_LIMIT})` : `limits.${k}`))
    .join(', ');
}

function writeHint(err: unknown, path: string, value: string): string | null {
  const errno = errnoOf(err);
  const file = posix.basename(path);
  if (file.startsWith('cpuset.') && (errno === EINVAL || errno === ENOSPC || errno === ERANGE)) {
    return `the kernel refused ${value}: it must be a subset of the parent's ${file} (see ${posix.join(posix.dirname(posix.dirname(path)), file)}), and the CPUs or nodes must be online`;
  }
  if ((file === 'io.max' || file.startsWith('blkio.throttle')) && (errno === ENODEV || errno === EINVAL)) {
    return 'the kernel throttles whole disks only: name the disk (/dev/sda), not a partition, and a device with a request queue';
  }
  if (errno === EINVAL) return `the kernel rejected the value ${JSON.stringify(value)} for ${file}`;
  return null;
}

/**
 * What a result reports (Cgroup.usage()), from the files `read` gives.
 * Which files it reads never depends on what they hold: usageFiles() lists
 * them by running it with a reader that only notes each one.
 */
function usageWith(version: (c: ControllerName) => 1 | 2, read: StatReader): CgroupUsage {
  const memory = memoryUsage(version('memory'), read);
  return { peakMemoryBytes: memory.peak, oomKills: memory.oomKills, peakPids: pidsPeak(version('pids'), read), cpuThrottledPeriods: cpuThrottledPeriods(version('cpu'), read) };
}

/** The files usageWith() reads, as paths under `dirs`. */
function usageFiles(version: (c: ControllerName) => 1 | 2, dirs: Readonly<Record<string, string>>): string[] {
  const files: string[] = [];
  usageWith(version, (hierarchy, file) => {
    const dir = dirs[hierarchy];
    if (dir !== undefined) files.push(posix.join(dir, file));
    return null;
  });
  return files;
}

class CgroupImpl implements Cgroup {
  readonly mode: CgroupMode;
  readonly id: string;
  readonly v2Path: string | null;
  readonly paths: Readonly<Record<string, string>>;
  readonly #fs: CgroupFs;
  readonly #versions: Map<ControllerName, 1 | 2>;
  readonly #placement: Placement;
  readonly #applied: AppliedLimits;
  readonly #marker: Marker;
  readonly #stateDir: string;
  #destroyed = false;
  readonly usageFiles: readonly string[];

  constructor(init: { mode: CgroupMode; id: string; fs: CgroupFs; versions: Map<ControllerName, 1 | 2>; placement: Placement; applied: AppliedLimits; marker: Marker; stateDir: string; usageFiles: readonly string[] }) {
    this.mode = init.mode;
    this.id = init.id;
    this.#fs = init.fs;
    this.#versions = init.versions;
    this.#placement = init.placement;
    this.paths = Object.freeze({ ...init.placement.dirs });
    this.v2Path = init.mode === 'v2' ? (init.placement.dirs.unified ?? null) : null;
    this.#applied = init.applied;
    this.#marker = init.marker;
    this.#stateDir = init.stateDir;
    // The very list the plan named (PreparedCgroup.usageFiles): the
    // monitor's texts come in its order.
    this.usageFiles = init.usageFiles;
  }

  place(pid: number): void {
    for (const path of procsFiles(this.#placement.dirs)) {
      try {
        this.#fs.write(path, String(pid));
      } catch (err) {
        throw cgroupError(
          err,
          path,
          `place process ${pid} in the container's cgroup`,
          errnoOf(err) === ESRCH ? 'the process exited before it could be placed' : errnoOf(err) === EBUSY ? 'on v2 a process may only join a cgroup without controllers enabled in its cgroup.subtree_control' : undefined,
        );
      }
    }
  }

  stats(): CgroupStats {
    const version = (c: ControllerName) => this.#version(c);
    const read = this.#read;
    return { memory: memoryStats(version('memory'), read), cpu: cpuStats(version('cpu'), read), pids: pidsStats(version('pids'), read) };
  }

  usage(): CgroupUsage {
    return usageWith((c) => this.#version(c), this.#read);
  }

  usageFrom(texts: readonly (string | null)[]): CgroupUsage {
    // usageWith asks for the files in usageFiles' order (usageFiles is made by running it).
    let next = 0;
    return usageWith(
      (c) => this.#version(c),
      (hierarchy) => (this.#placement.dirs[hierarchy] === undefined ? null : (texts[next++] ?? null)),
    );
  }

  readonly #read: StatReader = (hierarchy, file) => {
    const dir = this.#placement.dirs[hierarchy];
    return dir === undefined ? null : readIfPresent(this.#fs, posix.join(dir, file));
  };

  #version(c: ControllerName): 1 | 2 {
    return this.#versions.get(c) ?? (this.mode === 'v2' ? 2 : 1);
  }

  kill(): void {
    killCgroup(this.#placement, this.#fs);
  }

  destroy(): void {
    if (this.#destroyed) return;
    removeCgroup(this.#placement, this.#fs);
    // An exact path's ancestors are the container's own: they go with it.
    if (this.#placement.exact) removeParents(this.#placement.parents, this.#fs);
    removeMarker(this.#stateDir, this.id);
    this.#destroyed = true;
  }

  applied(): AppliedLimits {
    return { ...this.#applied, writes: this.#applied.writes.map((w) => ({ ...w })) };
  }

  setOwner(pid: number): void {
    this.#marker.ownerPid = pid;
    this.#marker.ownerStart = processStart(pid);
    writeMarker(this.#stateDir, this.#marker);
  }
}

/**
 * A container's cgroups decided but not made yet: where they go (`paths`,
 * `v2Path`) is known, nothing exists. `create()` makes them; it runs at most
 * once. Splitting the two lets a launch tell tsbox-init where the cgroups
 * will be and make them while it clones.
 */
export interface PreparedCgroup {
  readonly mode: CgroupMode;
  readonly v2Path: string | null;
  readonly paths: Readonly<Record<string, string>>;
  /** The cgroup.procs file of each directory in `paths`: where a process is placed. */
  readonly procsFiles: readonly string[];
  /** Directories of `paths` that exist already (a joined cgroupsPath): kept when the container goes. */
  readonly kept: readonly string[];
  /** The files the result's usage is read from (Cgroup.usageFiles), known before the cgroup exists. */
  readonly usageFiles: readonly string[];
  /**
   * v1 and hybrid: how a thread gets into the v1 cgroups by moving itself
   * (`tasks`, and `home`: this process's own cgroups in the same hierarchies,
   * in the same order), which takes no RCU grace period (tsbox-init's
   * `CgroupPhase::Enter`). Null on v2, for a systemd scope, for a joined
   * cgroup (it may be frozen, and would freeze the mover), where this
   * process's own cgroup in a hierarchy cannot be named, and under a pids
   * limit below 2 (the mover is counted while it clones).
   */
  readonly enter: { readonly tasks: readonly string[]; readonly home: readonly string[] } | null;
  create(): Cgroup;
}

/** See PreparedCgroup.enter. */
function enterFiles(p: Plan, layout: CgroupLayout, pidsLimit: number): PreparedCgroup['enter'] {
  if (layout.mode === 'v2' || p.systemd !== undefined || p.adopted.length > 0 || (pidsLimit >= 0 && pidsLimit < 2)) return null;
  const tasks: string[] = [];
  const home: string[] = [];
  for (const [name, h] of p.hierarchies) {
    const file = posix.join(h.leaf, 'tasks');
    // Co-mounted controllers (cpu,cpuacct) share one directory: one move.
    if (name === 'unified' || tasks.includes(file)) continue;
    const mount = layout.v1.get(name);
    const own = layout.own.v1.get(name);
    if (mount === undefined || own === undefined) return null;
    let dir: string;
    try {
      dir = cgroupDir(mount, own);
    } catch {
      return null;
    }
    tasks.push(file);
    home.push(posix.join(dir, 'tasks'));
  }
  return tasks.length > 0 ? { tasks, home } : null;
}

/** The cgroup.procs file of each of `dirs` (hierarchies may share a directory). */
function procsFiles(dirs: Readonly<Record<string, string>>): string[] {
  return [...new Set(Object.values(dirs))].map((dir) => posix.join(dir, 'cgroup.procs'));
}

/**
 * Creates the container's cgroups with `limits` written (see index.ts). Throws
 * a TsboxError (step `config` for bad limits, `cgroup` otherwise) and leaves
 * nothing behind when any step fails.
 */
export function createCgroup(id: string, limits: CgroupLimitsInput = {}, opts: CreateOptions = {}): Cgroup {
  return prepareCgroup(id, limits, opts).create();
}

/** Checks `limits` and decides every directory and write (the first half of createCgroup). */
export function prepareCgroup(id: string, limits: CgroupLimitsInput = {}, opts: CreateOptions = {}): PreparedCgroup {
  return prepareParsedCgroup(id, parseLimits(limits), opts);
}

/**
 * prepareCgroup for limits parsed already: a launch's, from options the run
 * schema resolved (its limit fields and their checks across fields are the
 * limits schema's own), which a second parse would give back unchanged. It
 * spares a CLI run building that schema cold (~0.9 ms).
 */
export function prepareParsedCgroup(id: string, l: CgroupLimits, opts: CreateOptions = {}): PreparedCgroup {
  if (!ID_PATTERN.test(id)) {
    throw cgroupProblem(id, 'not a valid container id for a cgroup name', 'use letters, digits, _, . and -, starting with a letter or digit, at most 128 characters', EINVAL);
  }
  const fs = opts.fs ?? realFs;
  const trace = opts.trace;
  const layout = readLayout(fs, opts.proc ?? readProcSource());
  const p = plan(id, l, layout, fs, opts);
  trace?.(`cgroup: ${layout.mode}, ${[...p.versions].map(([c, v]) => `${c} v${v}`).join(', ') || 'no controllers'}`);
  const placement: Placement = {
    dirs: Object.fromEntries([...p.hierarchies].map(([h, d]) => [h, d.leaf])),
    // A systemd scope's slices are systemd's, made and removed by it.
    parents: p.systemd !== undefined ? [] : [...new Set([...p.hierarchies.values()].flatMap((d) => (d.exact ? missingAncestors(d.tsbox, fs) : [d.tsbox])))],
    ...(p.adopted.length > 0 ? { kept: p.adopted } : {}),
    // A joined cgroup keeps what is attached to it: its teardown detaches the program.
    ...(opts.devices && layout.mode === 'v2' && p.adopted.includes(p.hierarchies.get('unified')!.leaf) ? { deviceFilter: p.hierarchies.get('unified')!.leaf } : {}),
    ...(opts.path !== undefined ? { exact: true } : {}),
    ...(p.systemd !== undefined ? { systemd: p.systemd } : {}),
  };
  let created = false;
  let enter: PreparedCgroup['enter'] | undefined;
  const usage = Object.freeze(usageFiles((c) => p.versions.get(c) ?? (layout.mode === 'v2' ? 2 : 1), placement.dirs));
  return {
    mode: layout.mode,
    v2Path: layout.mode === 'v2' ? (placement.dirs.unified ?? null) : null,
    paths: Object.freeze({ ...placement.dirs }),
    procsFiles: procsFiles(placement.dirs),
    kept: Object.freeze([...(placement.kept ?? [])]),
    usageFiles: usage,
    // Only a root launch on Linux 6.5+ asks (ts/runtime/launch.ts).
    get enter() {
      if (enter === undefined) enter = enterFiles(p, layout, l.pidsLimit);
      return enter;
    },
    create(): Cgroup {
      if (created) throw new Error('PreparedCgroup.create() runs once');
      created = true;
      const stateDir = opts.stateDir ?? defaultStateDir();
      const owner = opts.owner ?? process.pid;
      const marker: Marker = { id, ownerPid: owner, ownerStart: processStart(owner), createdAt: new Date().toISOString(), ...placement };
      // The marker exists before the cgroups do, so gc() never takes them for orphans;
      // written exclusively, it also refuses an id in use before anything is touched.
      writeMarker(stateDir, marker, true);

      // The leaves this call created, by hierarchy: on failure only these go (a leaf that existed belongs to someone else).
      const made: Record<string, string> = {};
      const madeParents: string[] = [];
      const writes: AppliedLimits['writes'] = [];
      try {
        createDirs(p, fs, made, madeParents, trace);
        // Before the limits and before any process: nothing in the cgroup
        // ever opens a device the rules deny. The program goes with the
        // cgroup (rmdir), on the failure path below too; from a joined
        // cgroup, which stays, it is detached (placement.deviceFilter).
        if (opts.devices && layout.mode === 'v2') attachDeviceFilter(p.hierarchies.get('unified')!.leaf, opts.devices, fs, trace);
        else if (opts.devices) writeDeviceRules(p.hierarchies.get('devices')!.leaf, opts.devices, fs, trace);
        for (const w of p.writes) writeLimit(w, p.hierarchies.get(w.hierarchy)!.leaf, fs, writes, trace);
      } catch (err) {
        try {
          // What this call made goes, the `tsbox` parents too (unless another
          // container is in one by now).
          // A joined cgroup is emptied, never removed (placement.kept).
          // A systemd scope is stopped instead (which also ends the helper in it).
          if (placement.systemd !== undefined) stopScope(placement.systemd);
          else removeCgroup({ ...placement, dirs: made }, fs);
          removeParents([...madeParents].reverse(), fs);
        } catch {
          // The first error is the one to report.
        }
        removeMarker(stateDir, id);
        throw err;
      }
      return new CgroupImpl({ mode: layout.mode, id, fs, versions: p.versions, placement, applied: { mode: layout.mode, limits: l, writes }, marker, stateDir, usageFiles: usage });
    },
  };
}

function mkdirShared(dir: string, fs: CgroupFs): boolean {
  try {
    fs.mkdir(dir);
    return true;
  } catch (err) {
    if (errnoOf(err) === EEXIST) return false;
    throw cgroupError(err, dir, 'create the tsbox cgroup');
  }
}

function enableControllers(dir: string, controllers: readonly string[], fs: CgroupFs, trace?: (line: string) => void): void {
  const path = posix.join(dir, 'cgroup.subtree_control');
  const enabled = splitList(readIfPresent(fs, path));
  for (const c of controllers) {
    if (enabled.includes(c)) continue;
    try {
      fs.write(path, `+${c}`);
    } catch (err) {
      const errno = errnoOf(err);
      throw cgroupError(
        err,
        path,
        `enable the ${c} controller for the containers`,
        errno === EBUSY ? noProcessesHint(dir) : errno === ENOENT || errno === EINVAL ? `${c} is not in ${posix.join(dir, 'cgroup.controllers')}: enable it in the parent's cgroup.subtree_control first` : undefined,
      );
    }
    trace?.(`cgroup: +${c} in ${path}`);
  }
}

/**
 * v1 cpuset: a new cgroup has empty cpus and mems and takes no process until
 * they are filled from the parent. A parent that is empty itself (a cgroup
 * parent made with mkdir) is filled from its own first, up to the first
 * ancestor that has them, as runc does.
 */
function inheritCpuset(dir: string, fs: CgroupFs, depth = 0): void {
  for (const file of CPUSET_INHERIT) {
    const path = posix.join(dir, file);
    try {
      if (fs.read(path).trim() !== '') continue;
      const parentDir = posix.dirname(dir);
      const parent = posix.join(parentDir, file);
      let value = fs.read(parent).trim();
      if (value === '') value = fs.read(posix.join(parentDir, file.replace('cpuset.', 'cpuset.effective_'))).trim();
      if (value === '' && depth < 32 && fs.exists(posix.join(posix.dirname(parentDir), file))) {
        inheritCpuset(parentDir, fs, depth + 1);
        value = fs.read(parent).trim();
      }
      fs.write(path, value);
    } catch (err) {
      throw cgroupError(err, path, 'fill the new cpuset cgroup from its parent');
    }
  }
}

function createDirs(p: Plan, fs: CgroupFs, created: Record<string, string>, madeParents: string[], trace?: (line: string) => void): void {
  // The shared `tsbox` parents stay once made (as Docker's `docker` cgroup
  // does; `tsbox gc` removes the empty ones): on v1 the leaf is made first,
  // and its parent only when the leaf's mkdir says it is missing (ENOENT),
  // which it also is when gc removed it meanwhile.
  const makeParent = (dir: string) => {
    if (!mkdirShared(dir, fs)) return;
    madeParents.push(dir);
    trace?.(`cgroup: mkdir ${dir}`);
  };
  const unified = p.hierarchies.get('unified');
  if (p.evacuate !== undefined) evacuate(p.evacuate, fs, trace);
  if (unified && p.enable.length > 0) enableControllers(nearestExisting(unified.parent, fs), p.enable, fs, trace);
  for (const [name, h] of p.hierarchies) {
    if (created[name] !== undefined) continue;
    // Co-mounted v1 controllers (cpu,cpuacct) share one directory.
    if (Object.values(created).includes(h.leaf)) {
      created[name] = h.leaf;
      continue;
    }
    if (h.exact && p.systemd !== undefined) {
      // systemd made it when it started the scope (with the helper in it).
      if (!fs.exists(h.leaf)) throw cgroupProblem(h.leaf, `systemd started ${p.systemd}, and its cgroup does not exist`, `systemctl status ${p.systemd} says why`, ENOENT);
      created[name] = h.leaf;
      trace?.(`cgroup: ${h.leaf} is systemd's scope ${p.systemd}`);
      continue;
    }
    if (h.exact) {
      // Its missing ancestors, outermost first (v2: each enabling the
      // controllers for the next; v1 cpuset: each filled from its parent).
      for (const d of missingAncestors(h.tsbox, fs).reverse()) {
        makeParent(d);
        if (name === 'cpuset') inheritCpuset(d, fs);
        if (name === 'unified' && p.enable.length > 0) enableControllers(d, p.enable, fs, trace);
      }
      if (p.adopted.includes(h.leaf)) {
        created[name] = h.leaf;
        trace?.(`cgroup: ${h.leaf} exists: joined, and kept`);
        continue;
      }
    }
    // v2: the parent first, with the controllers the leaf needs enabled
    // before it exists (a check of its subtree_control each time).
    if (name === 'unified') {
      makeParent(h.tsbox);
      if (p.enable.length > 0) enableControllers(h.tsbox, p.enable, fs, trace);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        fs.mkdir(h.leaf);
        break;
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === EEXIST) {
          throw cgroupError(err, h.leaf, 'a cgroup for this container id exists already', 'container ids must be unique; if its container is gone, `tsbox gc` removes it');
        }
        if (errno !== ENOENT || attempt >= 3) throw cgroupError(err, h.leaf, 'create the container\'s cgroup');
      }
      makeParent(h.tsbox);
      if (name === 'cpuset') inheritCpuset(h.tsbox, fs);
      if (name === 'unified' && p.enable.length > 0) enableControllers(h.tsbox, p.enable, fs, trace);
    }
    created[name] = h.leaf;
    trace?.(`cgroup: mkdir ${h.leaf}`);
    if (name === 'cpuset') inheritCpuset(h.leaf, fs);
  }
}

/**
 * The usage of container `id`'s cgroup, from any process (through the
 * cgroup's marker), and the limits in force where the kernel shows them;
 * null when it has no cgroup.
 */
export function containerStats(id: string, opts: { stateDir?: string; fs?: CgroupFs } = {}): (CgroupStats & { limits: { memory: number | null; pids: number | null } }) | null {
  const fs = opts.fs ?? realFs;
  const m = readMarker(opts.stateDir ?? defaultStateDir(), id);
  if (m === null) return null;
  const read = (hierarchy: string, file: string): string | null => {
    const dir = m.dirs[hierarchy];
    return dir === undefined ? null : readIfPresent(fs, posix.join(dir, file));
  };
  const version = (c: Controller): 1 | 2 => (m.dirs[c.v1[0]!] !== undefined ? 1 : 2);
  const limit = (text: string | null) => (text === null || text.trim() === 'max' || text.trim() === '' ? null : Number(text.trim()));
  const memLimit = version(memory) === 1 ? limit(read('memory', 'memory.limit_in_bytes')) : limit(read('unified', 'memory.max'));
  return {
    memory: memoryStats(version(memory), read),
    cpu: cpuStats(version(cpu), read),
    pids: pidsStats(version(pids), read),
    limits: {
      // v1's "no limit" is a page-rounded LONG_MAX.
      memory: memLimit !== null && memLimit >= 2 ** 62 ? null : memLimit,
      pids: limit(version(pids) === 1 ? read('pids', 'pids.max') : read('unified', 'pids.max')),
    },
  };
}

/**
 * Changes the limits of container `id`'s cgroup while it runs (an OCI
 * runtime's `update`): only the limits given are written, each to the
 * hierarchy that holds it (found through the cgroup's marker), in the order
 * its controller needs. Returns the writes.
 */
export function updateCgroup(id: string, given: CgroupLimitsInput, opts: { stateDir?: string; fs?: CgroupFs } = {}): AppliedLimits['writes'] {
  const fs = opts.fs ?? realFs;
  const m = readMarker(opts.stateDir ?? defaultStateDir(), id);
  if (m === null) throw cgroupProblem(id.slice(0, 12), 'the container has no cgroup (it runs without one, or it is gone)', null, ENOENT);
  const keys = Object.keys(given).filter((k) => (given as Record<string, unknown>)[k] !== undefined);
  const l = parseLimits(given);
  const unified = m.dirs.unified;
  const v2 = unified !== undefined ? splitList(readIfPresent(fs, posix.join(unified, 'cgroup.controllers'))) : [];
  const writes: AppliedLimits['writes'] = [];
  for (const c of CONTROLLERS) {
    if (!c.limits.some((k) => keys.includes(k))) continue;
    const version = m.dirs[c.v1[0]!] !== undefined ? 1 : v2.includes(c.name) ? 2 : null;
    if (version === null) throw cgroupProblem(id.slice(0, 12), `the container's cgroup has no ${c.name} controller, which ${c.limits.filter((k) => keys.includes(k)).join(', ')} needs`, 'a limit needs its controller from create on: set one of its limits then', ENOENT);
    const devices = new Map<string, string>();
    if (c.name === 'io') for (const d of limitDevices(l)) devices.set(deviceKey(d), deviceNumber(d));
    // The controller's writes for what was given; a controller nothing was
    // given for is left alone (the default pids limit stays). v1 refuses a
    // memory limit above memory+swap: raising both goes the other way round.
    // Docker's implicit swap beside a new memory limit is create's default,
    // not an update's: swap changes only when it is given.
    const ws = c
      .writes(version, l, devices)
      .filter((w) => (version === 1 ? m.dirs[w.hierarchy] : unified) !== undefined)
      .filter((w) => w.limit !== 'memorySwap' || keys.includes('memorySwap'));
    const apply = (list: LimitWrite[]) => {
      for (const w of list) writeLimit(w, version === 1 ? m.dirs[w.hierarchy]! : unified!, fs, writes);
    };
    try {
      apply(ws);
    } catch (err) {
      if (errnoOf(err) !== EINVAL || ws.length < 2) throw err;
      apply([...ws].reverse());
    }
  }
  // A systemd scope's unit gets them too (systemd.ts).
  if (m.systemd !== undefined && unified !== undefined && writes.length > 0) syncScope(m.systemd, unified, (path) => readIfPresent(fs, path));
  return writes;
}

/** The device rules, in order, into the container's v1 device cgroup. */
function writeDeviceRules(dir: string, rules: readonly DeviceRuleWrite[], fs: CgroupFs, trace?: (line: string) => void): void {
  for (const r of rules) {
    const path = posix.join(dir, r.file);
    try {
      fs.write(path, r.value);
    } catch (err) {
      throw cgroupError(err, path, `write the device rule ${JSON.stringify(r.value)}`, errnoOf(err) === EPERM ? 'a device cgroup may only allow what its parent allows' : null);
    }
    trace?.(`cgroup: ${path} = ${r.value}`);
  }
}

/**
 * The device rules, as an eBPF device program attached to the container's
 * v2 cgroup (pure v2 has no device controller).
 */
function attachDeviceFilter(dir: string, rules: readonly DeviceRuleWrite[], fs: CgroupFs, trace?: (line: string) => void): void {
  try {
    fs.attachDeviceFilter(dir, rules);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const errno = errnoOf(err);
    const hint =
      errno === 0
        ? 'change the rule in linux.resources.devices'
        : errno === EPERM || errno === EACCES
          ? 'loading and attaching a device program needs CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace: run tsbox as root on the host, not in a container or another user namespace'
          : errno === EINVAL
            ? 'the kernel needs cgroup BPF (CONFIG_CGROUP_BPF, Linux 4.15 or later) for device rules on cgroup v2'
            : null;
    const detail = errno === 0 ? `the device rules cannot be carried out: ${e.message}` : `carry out the device rules with an eBPF program (${e.syscall ?? 'bpf'}): ${e.message}`;
    throw cgroupError(err, dir, detail, hint);
  }
  trace?.(`cgroup: ${dir}: eBPF device program for ${rules.length} rules attached`);
}

function writeLimit(w: LimitWrite, dir: string, fs: CgroupFs, writes: AppliedLimits['writes'], trace?: (line: string) => void): void {
  let wrote = 0;
  for (const { file, value } of w.files) {
    const path = posix.join(dir, file);
    try {
      fs.write(path, value);
    } catch (err) {
      if (errnoOf(err) === ENOENT) continue;
      throw cgroupError(err, path, `limits.${w.limit}: write ${JSON.stringify(value)}`, writeHint(err, path, value));
    }
    wrote++;
    writes.push({ path, value, limit: w.limit });
    trace?.(`cgroup: ${path} = ${value}`);
  }
  if (wrote === 0 && !w.optional) {
    const path = posix.join(dir, w.files[0]!.file);
    throw cgroupProblem(path, `limits.${w.limit}: the kernel has no ${w.files.map((f) => f.file).join(' or ')} in ${dir}`, w.missingHint, ENOENT);
  }
}

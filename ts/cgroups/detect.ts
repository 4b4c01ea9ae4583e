/**
 * Which cgroup layout this host has, read from /proc/self/mountinfo and
 * /proc/self/cgroup:
 *
 * - `v2`: only the unified (cgroup2) hierarchy carries controllers.
 * - `v1`: controllers on v1 hierarchies, no cgroup2 mount.
 * - `hybrid`: controllers on v1 hierarchies, plus a cgroup2 mount (systemd's
 *   /sys/fs/cgroup/unified) that usually carries none. tsbox uses the v1
 *   controllers and ignores the unified mount unless a controller it needs is
 *   only there.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { posix } from 'node:path';

import { cgroupError, cgroupProblem, type CgroupFs } from './fs.js';

export type CgroupMode = 'v1' | 'hybrid' | 'v2';

/** A mounted cgroup hierarchy: where, and which cgroup is at its mount point (`/` unless a subtree was bind-mounted). */
export interface HierarchyMount {
  mountpoint: string;
  root: string;
}

export interface V1Mount extends HierarchyMount {
  /** The hierarchy's controllers, e.g. `['cpu', 'cpuacct']`, `['name=systemd']`. */
  controllers: string[];
}

export interface CgroupLayout {
  mode: CgroupMode;
  /** v1 hierarchies by controller (co-mounted controllers share one entry). */
  v1: Map<string, V1Mount>;
  unified: HierarchyMount | null;
  /** Controllers the unified hierarchy offers at its root (empty on most hybrid hosts). */
  unifiedControllers: string[];
  /** The caller's own cgroup: per v1 controller, and on the unified hierarchy. */
  own: { v1: Map<string, string>; unified: string | null };
}

/** The two files the layout is read from; tests pass fixtures. */
export interface ProcSource {
  mountinfo: string;
  cgroup: string;
}

export function readProcSource(): ProcSource {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw cgroupError(err, path, `read ${path}`, 'tsbox needs /proc mounted to find the cgroup hierarchies');
    }
  };
  return { mountinfo: read('/proc/self/mountinfo'), cgroup: read('/proc/self/cgroup') };
}

/** The v1 controllers; a v1 mount's other options (xattr, noprefix, release_agent=...) are not. */
const V1_CONTROLLERS = new Set(['cpuset', 'cpu', 'cpuacct', 'blkio', 'memory', 'devices', 'freezer', 'net_cls', 'perf_event', 'net_prio', 'hugetlb', 'pids', 'rdma', 'misc', 'debug']);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroup mounts in mountinfo: v1 hierarchies by controller, and the unified one. */
export function parseMountinfo(text: string): { v1: Map<string, V1Mount>; unified: HierarchyMount | null } {
  const v1 = new Map<string, V1Mount>();
  const unifieds: HierarchyMount[] = [];
  const preferred = (m: HierarchyMount) => m.mountpoint.startsWith('/sys/fs/cgroup');
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mount = { root: unescape(left[3] ?? '/'), mountpoint: unescape(left[4] ?? '') };
    if (fstype === 'cgroup2') {
      unifieds.push(mount);
      continue;
    }
    const controllers = superOptions.split(',').filter((o) => V1_CONTROLLERS.has(o) || o.startsWith('name='));
    for (const c of controllers) {
      const seen = v1.get(c);
      // The same hierarchy mounted twice: keep the one under /sys/fs/cgroup.
      if (!seen || (!preferred(seen) && preferred(mount))) v1.set(c, { ...mount, controllers });
    }
  }
  const unified =
    unifieds.find((m) => m.mountpoint === '/sys/fs/cgroup') ??
    unifieds.find((m) => m.mountpoint === '/sys/fs/cgroup/unified') ??
    unifieds[0] ??
    null;
  return { v1, unified };
}

/** /proc/PID/cgroup: the cgroup per v1 controller, and the unified one (`0::/path`). */
export function parseProcCgroup(text: string): { v1: Map<string, string>; unified: string | null } {
  const v1 = new Map<string, string>();
  let unified: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') unified = m[3]!;
    else for (const c of m[2]!.split(',')) if (c) v1.set(c, m[3]!);
  }
  return { v1, unified };
}

/** True for a real v1 controller (not a named hierarchy such as name=systemd). */
const isController = (c: string) => !c.startsWith('name=');

export function readLayout(fs: CgroupFs, src: ProcSource = readProcSource()): CgroupLayout {
  const { v1, unified } = parseMountinfo(src.mountinfo);
  const own = parseProcCgroup(src.cgroup);
  const hasV1 = [...v1.keys()].some(isController);
  if (!hasV1 && unified === null) {
    throw cgroupProblem('/sys/fs/cgroup', 'no cgroup hierarchy is mounted', 'mount cgroup2 at /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup), or run tsbox where systemd has mounted it', 2);
  }
  let unifiedControllers: string[] = [];
  if (unified !== null) {
    try {
      unifiedControllers = fs.read(posix.join(unified.mountpoint, 'cgroup.controllers')).trim().split(/\s+/).filter(Boolean);
    } catch {
      unifiedControllers = [];
    }
  }
  return {
    mode: hasV1 ? (unified ? 'hybrid' : 'v1') : 'v2',
    v1,
    unified,
    unifiedControllers,
    own,
  };
}

/** `v1`, `hybrid` or `v2` for this process (or for the fixture `src`). */
export function detectCgroupMode(src: ProcSource = readProcSource()): CgroupMode {
  const { v1, unified } = parseMountinfo(src.mountinfo);
  if ([...v1.keys()].some(isController)) return unified ? 'hybrid' : 'v1';
  if (unified) return 'v2';
  throw cgroupProblem('/sys/fs/cgroup', 'no cgroup hierarchy is mounted', 'mount cgroup2 at /sys/fs/cgroup, or run tsbox where systemd has mounted it', 2);
}

/** The host has a v1 devices hierarchy: a device cgroup can hold a container's device rules. */
export function hasV1Devices(src: ProcSource = readProcSource()): boolean {
  return parseMountinfo(src.mountinfo).v1.has('devices');
}

/** The directory of cgroup `path` (as /proc/PID/cgroup writes it) in a mounted hierarchy. */
export function cgroupDir(mount: HierarchyMount, path: string): string {
  const clean = posix.normalize(path);
  if (!clean.startsWith('/') || path.split('/').includes('..')) {
    throw cgroupProblem(path, 'the cgroup lies outside this cgroup namespace', 'run tsbox in the cgroup namespace whose /sys/fs/cgroup it sees, or pass the cgroup parent explicitly');
  }
  const join = (rel: string) => posix.join(mount.mountpoint, rel).replace(/(.)\/$/, '$1');
  if (mount.root === '/') return join(clean);
  if (clean === mount.root || clean.startsWith(`${mount.root}/`)) return join(clean.slice(mount.root.length));
  throw cgroupProblem(path, `the cgroup is not below the mounted subtree ${mount.root} at ${mount.mountpoint}`, 'pass the cgroup parent explicitly, as a path inside the mounted subtree');
}

/**
 * The cgroup that holds `tsbox/<id>` in `hierarchy` (a v1 hierarchy name, or
 * `unified`), as a cgroup path: the configured parent, else
 *
 * - v1: the caller's own cgroup in that hierarchy (v1 lets a cgroup hold
 *   processes and children at once);
 * - v2: the caller's own cgroup when it is the root, else its parent. The
 *   kernel refuses to enable controllers for the children of a non-root cgroup
 *   that has processes in it ("no internal processes"), and the caller's own
 *   cgroup always has one: the caller. runc does the same for relative cgroup
 *   paths (fs2 defaultDirPath: "a parent cgroup (with no tasks in it) is what
 *   we need"), and crun falls back to a sibling of its own cgroup. On a
 *   systemd host that parent is the slice (e.g. /system.slice or
 *   /user.slice/user-1000.slice); a service with `Delegate=yes` and
 *   `DelegateSubgroup=` runs its main process one level down, so the parent is
 *   its own delegated cgroup.
 */
export function parentPath(layout: CgroupLayout, hierarchy: string, configured?: string): string {
  if (configured !== undefined) return configured;
  if (hierarchy !== 'unified') return layout.own.v1.get(hierarchy) ?? '/';
  const own = layout.own.unified ?? '/';
  return own === '/' ? '/' : posix.dirname(own);
}

/**
 * The cgroup.procs of this process's own cgroup in one v1 hierarchy (pids
 * when there is one), or null without v1 hierarchies. Writing this process's
 * pid there moves nothing but takes the lock every migration takes: tsbox
 * does it to start, early, the RCU grace period the helper's move of a
 * container into its v1 cgroups would otherwise wait for (several ms after an
 * idle spell; crates/tsbox-napi/src/cgroup.rs).
 */
export function ownV1Procs(src: ProcSource = readProcSource()): string | null {
  const { v1 } = parseMountinfo(src.mountinfo);
  const own = parseProcCgroup(src.cgroup).v1;
  const controller = own.has('pids') && v1.has('pids') ? 'pids' : [...own.keys()].find((c) => v1.has(c) && isController(c));
  if (controller === undefined) return null;
  return posix.join(cgroupDir(v1.get(controller)!, own.get(controller)!), 'cgroup.procs');
}

/**
 * Whether a thread that moves itself between v1 cgroups (`0` written to a
 * `tasks` file) waits for no RCU grace period, by the kernel's version
 * (`rel`, as `uname -r` gives it): Linux 6.5 and later, where such a move
 * skips cgroup_threadgroup_rwsem and cpuset's attach takes a mutex, not a
 * per-CPU rwsem whose write side waits for a grace period as well (and where
 * the kernel gives a thread that leaves a cpuset the affinity it asked for).
 * Measured on 6.18 (bench/README.md, the seventh stop); an older kernel keeps
 * the move by pid, whose wait a launch's prewarm overlaps with its setup.
 */
export function selfMoveSkipsGracePeriod(rel: string = kernelRelease()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (m === null) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 6 || (major === 6 && minor >= 5);
}

/** uname -r, read once: the kernel does not change under a process. */
function kernelRelease(): string {
  cachedRelease ??= release();
  return cachedRelease;
}
let cachedRelease: string | undefined;

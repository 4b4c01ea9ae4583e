/**
 * Teardown, shared by Cgroup.destroy() and gc(): kill everything left in a
 * container's cgroups — `cgroup.kill` on v2; on v1 freeze, SIGKILL every
 * process in cgroup.procs (through a pidfd, see killPids), thaw — then rmdir
 * them, leaves first, retrying while the killed processes finish exiting
 * (EBUSY). The shared `tsbox` parents stay; gc removes them when no
 * container uses them.
 */
import { posix } from 'node:path';

import { freeze, thaw } from './freezer.js';
import { cgroupError, cgroupProblem, EACCES, EBUSY, ENOENT, ENOSYS, ENOTEMPTY, EPERM, errnoOf, type CgroupFs } from './fs.js';
import { sleepSync } from '../sleep.js';
import { isScopeName, stopScope } from './systemd.js';

/** Where a container's cgroup lives: one directory per hierarchy, and the shared parents. */
export interface Placement {
  /** The container's directory per hierarchy: v1 hierarchy names (`memory`, `cpu`, ...) and `unified`. */
  dirs: Record<string, string>;
  /** The `tsbox` directories holding them, removed when empty. */
  parents: string[];
  /** Directories of `dirs` that existed before the container (an OCI cgroupsPath it joined): emptied, never removed. */
  kept?: string[];
  /**
   * The kept v2 directory of `kept` with tsbox's eBPF device program on it
   * (pure v2 with device rules): the program is detached when the container
   * goes, since the cgroup does not take it with it.
   */
  deviceFilter?: string;
  /** `parents` are what an exact path (an OCI cgroupsPath) made: its own, removed with it once empty, not shared. */
  exact?: boolean;
  /** The systemd scope unit whose cgroup `dirs.unified` is (systemd.ts): stopped once the cgroup is gone. */
  systemd?: string;
}

/** How long teardown waits for killed processes to leave their cgroups. */
const REMOVE_WAIT_MS = 5000;

const unique = (xs: Iterable<string>) => [...new Set(xs)];

/** The pids in `dir` and in every cgroup below it. */
export function listPids(dir: string, fs: CgroupFs): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    let text: string;
    try {
      text = fs.read(posix.join(d, 'cgroup.procs'));
    } catch (err) {
      if (errnoOf(err) === ENOENT) return;
      throw cgroupError(err, posix.join(d, 'cgroup.procs'), 'list the processes of a cgroup');
    }
    for (const t of text.split('\n')) if (/^\d+$/.test(t.trim())) out.push(Number(t));
    let subs: string[] = [];
    try {
      subs = fs.subdirs(d);
    } catch {
      // Gone meanwhile.
    }
    for (const s of subs) walk(posix.join(d, s));
  };
  walk(dir);
  return out;
}

/**
 * pidfds open at once in killPids: a container may have thousands of
 * processes (the default pids limit is 2048), and a descriptor each could
 * run this process out of them (EMFILE) in the middle of a teardown.
 */
const PIDFD_BATCH = 256;

/**
 * SIGKILLs each of `pids` (listed from `dirs`) that is still in `dirs`. A pid
 * is only a number: a process that exited after the listing leaves it free
 * for any new process on the host, which a kill by number would hit (as
 * root, anything). So a pidfd is opened for each first, and `dirs` are
 * listed again: a pid still listed then is the process its pidfd names (or
 * that process has exited since, and the signal finds nothing: ESRCH); a pid
 * no longer listed is left alone, whoever has it now.
 */
function killPids(pids: Iterable<number>, dirs: readonly string[], fs: CgroupFs): void {
  const all = unique([...pids].map(String)).map(Number);
  for (let i = 0; i < all.length; i += PIDFD_BATCH) {
    const pidfds = new Map<number, number>();
    try {
      for (const pid of all.slice(i, i + PIDFD_BATCH)) {
        let fd: number | null;
        try {
          fd = fs.pidfdOpen(pid);
        } catch (err) {
          throw cgroupError(err, String(pid), `open a pidfd for process ${pid} of the container`, errnoOf(err) === ENOSYS ? 'tsbox needs Linux 5.3 or later (pidfd_open)' : null);
        }
        if (fd !== null) pidfds.set(pid, fd);
      }
      if (pidfds.size === 0) continue;
      const still = new Set(dirs.flatMap((d) => listPids(d, fs)));
      for (const [pid, fd] of pidfds) {
        if (!still.has(pid)) continue;
        try {
          fs.pidfdSignal(fd, 'SIGKILL');
        } catch (err) {
          throw cgroupError(err, String(pid), `kill process ${pid} of the container`);
        }
      }
    } finally {
      for (const fd of pidfds.values()) fs.closePidfd(fd);
    }
  }
}

/** Kills every process in the container's cgroups (and in any cgroup it made below them). */
export function killCgroup(p: Placement, fs: CgroupFs): void {
  const unified = p.dirs.unified;
  let killedByKernel = false;
  if (unified !== undefined) {
    try {
      fs.write(posix.join(unified, 'cgroup.kill'), '1');
      killedByKernel = true;
    } catch (err) {
      // ENOENT: a kernel before 5.14 (or the cgroup is gone); fall back to freeze and kill.
      if (errnoOf(err) !== ENOENT) throw cgroupError(err, posix.join(unified, 'cgroup.kill'), 'kill the container\'s processes');
    }
  }
  const v1 = unique(Object.entries(p.dirs).filter(([h]) => h !== 'unified').map(([, d]) => d));
  const dirs = killedByKernel ? v1 : unique([...v1, ...(unified ? [unified] : [])]);
  if (dirs.length === 0) return;
  // The usual case: the container has ended and taken its processes with it.
  if (dirs.every((d) => listPids(d, fs).length === 0)) return;
  // Frozen, no process can fork between listing and killing: one round does.
  const freezer = p.dirs.freezer !== undefined ? { version: 1 as const, dir: p.dirs.freezer } : !killedByKernel && unified ? { version: 2 as const, dir: unified } : null;
  const frozen = freezer !== null && freeze(freezer.version, freezer.dir, fs);
  try {
    for (let round = 0; round < (frozen ? 1 : 10); round++) {
      const pids = dirs.flatMap((d) => listPids(d, fs));
      if (pids.length === 0) break;
      killPids(pids, dirs, fs);
      if (!frozen) sleepSync(5);
    }
  } finally {
    if (freezer !== null) thaw(freezer.version, freezer.dir, fs);
  }
}

/** rmdir `dir` and everything below it, leaves first; retries EBUSY until `deadline`. */
function removeTree(dir: string, fs: CgroupFs, deadline: number, rekill: () => void): void {
  let subs: string[];
  try {
    subs = fs.subdirs(dir);
  } catch (err) {
    if (errnoOf(err) === ENOENT) return;
    throw cgroupError(err, dir, 'list the child cgroups');
  }
  for (const s of subs) removeTree(posix.join(dir, s), fs, deadline, rekill);
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    try {
      fs.rmdir(dir);
      return;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === ENOENT) return;
      if (errno !== EBUSY || Date.now() >= deadline) {
        const left = errno === EBUSY ? listPids(dir, fs) : [];
        throw cgroupError(
          err,
          dir,
          left.length > 0 ? `remove the container's cgroup: processes ${left.join(', ')} are still in it` : 'remove the container\'s cgroup',
          errno === EBUSY ? 'a process in the cgroup did not die (stuck in uninterruptible sleep, D state?); `tsbox gc` removes the cgroup once it has' : null,
        );
      }
      // The killed processes are still exiting; a process that forked past the
      // first kill (no freezer, no cgroup.kill) is killed again.
      sleepSync(delay);
      if (delay >= 16) rekill();
    }
  }
}

/**
 * Kills what is left and removes the container's cgroups. The shared `tsbox`
 * parents stay for the next container (gc removes them when empty).
 */
export function removeCgroup(p: Placement, fs: CgroupFs): void {
  // The usual case: the container has ended, taking its processes with it,
  // and made no cgroups below its own. One rmdir each then; the kernel
  // refuses it (EBUSY) while anything is left, and from the first refusal on
  // the rest goes the long way. The freezer and the unified hierarchy, which
  // the long way kills with, go last.
  // (Taken now: `p` is narrowed to what is left below.)
  const unit = p.systemd;
  const last = new Set([p.dirs.freezer, p.dirs.unified]);
  const kept = new Set(p.kept ?? []);
  const order = unique([...Object.values(p.dirs).filter((d) => !last.has(d)), ...Object.values(p.dirs).filter((d) => last.has(d))]).filter((d) => !kept.has(d));
  let first: unknown = null;
  if (kept.size > 0) {
    killCgroup({ dirs: Object.fromEntries(Object.entries(p.dirs).filter(([, d]) => kept.has(d))), parents: [] }, fs);
    if (p.deviceFilter !== undefined && kept.has(p.deviceFilter)) {
      try {
        fs.detachDeviceFilter(p.deviceFilter);
      } catch (err) {
        first = cgroupError(err, p.deviceFilter, `detach tsbox's eBPF device program from the joined cgroup, which stays (${(err as NodeJS.ErrnoException).syscall ?? 'bpf'}): ${(err as Error).message}`, 'bpftool cgroup show <dir> lists it; `bpftool cgroup detach <dir> device id <id>` removes it');
      }
    }
  }
  let removed = 0;
  for (const dir of order) {
    try {
      fs.rmdir(dir);
    } catch (err) {
      if (errnoOf(err) !== ENOENT) break;
    }
    removed++;
  }
  const left = order.slice(removed);
  if (removed > 0) p = { dirs: Object.fromEntries(Object.entries(p.dirs).filter(([, d]) => left.includes(d))), parents: p.parents };
  try {
    killCgroup(p, fs);
  } catch (err) {
    first = err;
  }
  const deadline = Date.now() + REMOVE_WAIT_MS;
  for (const dir of left) {
    try {
      removeTree(dir, fs, deadline, () => killCgroup(p, fs));
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== null) throw first;
  // Only a scope unit's name, as the driver wrote it, goes to systemd.
  if (unit !== undefined && isScopeName(unit)) stopScope(unit);
}

/**
 * rmdir each `tsbox` parent that is empty; another container's presence
 * (ENOTEMPTY, EBUSY) is fine, and so is a parent this user may not remove
 * (EACCES, EPERM): it is not this user's (root's shared one, which an
 * ordinary user's gc sees on a v1 or hybrid host).
 */
export function removeParents(parents: readonly string[], fs: CgroupFs): void {
  for (const dir of unique(parents)) {
    try {
      fs.rmdir(dir);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno !== ENOENT && errno !== ENOTEMPTY && errno !== EBUSY && errno !== EACCES && errno !== EPERM) {
        throw cgroupProblem(dir, `remove the shared tsbox cgroup: ${(err as Error).message}`, null, errno);
      }
    }
  }
}

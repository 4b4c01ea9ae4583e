/**
 * The cgroup filesystem as the driver uses it: a handful of synchronous calls
 * (each is microseconds on cgroupfs, and sync calls keep the launch path short
 * and let teardown run from an 'exit' handler), behind an interface so that
 * the unit tests can run the driver against a fixture tree without root.
 */
import { accessSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, constants as fsc, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import type { PathOwner as NativePathOwner } from '../generated/addon.js';
import type { DeviceRuleWrite } from './driver.js';

export interface CgroupFs {
  /** mkdir(2), mode 0755; throws EEXIST when it exists. */
  mkdir(path: string): void;
  rmdir(path: string): void;
  /** The whole file as text. */
  read(path: string): string;
  /** One write(2) of `value` to an existing file: no O_CREAT, no O_TRUNC (cgroupfs files take one value per write). */
  write(path: string, value: string): void;
  exists(path: string): boolean;
  /** access(2) W_OK: this process may write `path` (a file), or make entries in it (a directory). */
  writable(path: string): boolean;
  /** Names of the subdirectories (child cgroups) of `path`. */
  subdirs(path: string): string[];
  /** lstat(2) of each path (a symlink is no directory), null where it fails: one call for a batch. */
  owners(paths: readonly string[]): (PathOwner | null)[];
  /**
   * pidfd_open(2): a descriptor that names the process numbered `pid` now,
   * and keeps naming it after it exits and the number goes to another
   * process; null when no process has that number (ESRCH). The caller
   * closes it with closePidfd.
   */
  pidfdOpen(pid: number): number | null;
  /** pidfd_send_signal(2) to the process `pidfd` names; false when it has exited (ESRCH). */
  pidfdSignal(pidfd: number, signal: NodeJS.Signals): boolean;
  /** close(2) of a descriptor from pidfdOpen. */
  closePidfd(pidfd: number): void;
  /**
   * Loads the eBPF program for the device rules `rules` (a v1 device
   * cgroup's writes, in order) and attaches it to the cgroup v2 directory
   * `dir` (bpf(2), through the addon). Throws an error with the errno and
   * the call that failed (`syscall`), as Node's system errors have them.
   */
  attachDeviceFilter(dir: string, rules: readonly DeviceRuleWrite[]): void;
  /**
   * Detaches tsbox's device programs from the cgroup v2 directory `dir`,
   * which stays (a joined cgroupsPath's teardown); others' are left, and a
   * directory that is gone has none. Throws as attachDeviceFilter does.
   */
  detachDeviceFilter(dir: string): void;
}

/** Who owns a path, and whether it is a directory (never a symlink's target): lstatMany's answer, what of it is read. */
export type PathOwner = Pick<NativePathOwner, 'uid' | 'isDirectory'>;

export const realFs: CgroupFs = {
  mkdir: (path) => mkdirSync(path, 0o755),
  rmdir: (path) => rmdirSync(path),
  read: (path) => readFileSync(path, 'utf8'),
  write: (path, value) => {
    const fd = openSync(path, fsc.O_WRONLY);
    try {
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
  },
  exists: (path) => {
    try {
      statSync(path);
      return true;
    } catch {
      return false;
    }
  },
  writable: (path) => {
    try {
      accessSync(path, fsc.W_OK);
      return true;
    } catch {
      return false;
    }
  },
  subdirs: (path) =>
    readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name),
  // One napi call: the first lstatSync calls of a process cost ~0.3 ms (lstatMany's comment).
  owners: (paths) => loadNative().binding.lstatMany([...paths]).map((o) => o ?? null),
  pidfdOpen: (pid) => {
    const fd = loadNative().binding.pidfdOpen(pid);
    if (fd === -ESRCH) return null;
    if (fd < 0) throw Object.assign(new Error(`pidfd_open of process ${pid} failed (errno ${-fd})`), { errno: fd, syscall: 'pidfd_open' });
    return fd;
  },
  pidfdSignal: (pidfd, signal) => {
    const r = loadNative().binding.pidfdSendSignal(pidfd, osConstants.signals[signal]);
    if (r === -ESRCH) return false;
    if (r < 0) throw Object.assign(new Error(`pidfd_send_signal ${signal} failed (errno ${-r})`), { errno: r, syscall: 'pidfd_send_signal' });
    return true;
  },
  closePidfd: (pidfd) => closeSync(pidfd),
  attachDeviceFilter: (dir, rules) => {
    const failed = loadNative().binding.attachDeviceFilter(dir, rules.map((r) => ({ file: r.file, value: r.value })));
    if (failed) throw Object.assign(new Error(failed.detail), { errno: -failed.errno, syscall: failed.call, path: dir });
  },
  detachDeviceFilter: (dir) => {
    const failed = loadNative().binding.detachDeviceFilter(dir);
    if (failed) throw Object.assign(new Error(failed.detail), { errno: -failed.errno, syscall: failed.call, path: dir });
  },
};

export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EACCES = 13;
export const ENOSPC = 28;
export const EROFS = 30;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;

/** The errno of a Node.js system error, positive; 0 when it is not one. */
export function errnoOf(err: unknown): number {
  const e = err as NodeJS.ErrnoException | null;
  return typeof e?.errno === 'number' ? Math.abs(e.errno) : 0;
}

function rootless(): boolean {
  return process.getuid?.() !== 0;
}

/** The hint for a failed cgroupfs call when the caller has none more specific. */
export function defaultHint(errno: number): string | null {
  switch (errno) {
    case EACCES:
    case EPERM:
      return rootless()
        ? 'an unprivileged user may only manage a cgroup delegated to it: run tsbox as root, or under a delegated cgroup (systemd-run --user --scope -p Delegate=yes ...) and pass its path as the cgroup parent; tsbox never drops a limit silently'
        : 'the cgroup filesystem refused a write as root: inside a container, its cgroupfs may be read-only or not delegated';
    case EROFS:
      return 'the cgroup filesystem is mounted read-only (inside a container?): mount it read-write or run tsbox on the host';
    case EBUSY:
      return 'the cgroup is in use: processes are still in it or a controller in its subtree needs it';
    default:
      return null;
  }
}

/** A failed cgroupfs call as a TsboxError: step `cgroup`, the call's errno, the path, and a hint. */
export function cgroupError(err: unknown, path: string, detail: string, hint?: string | null): TsboxError {
  const errno = errnoOf(err);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return new TsboxError(
    { step: 'cgroup', errno, path, detail: code && errno === 0 ? `${detail} (${code})` : detail, hint: hint ?? defaultHint(errno) },
    { cause: err },
  );
}

/** A cgroup problem found without a failed system call (errno 0). */
export function cgroupProblem(path: string, detail: string, hint: string | null, errno = 0): TsboxError {
  return new TsboxError({ step: 'cgroup', errno, path, detail, hint });
}


/** Reads `path` or returns null when it does not exist (a file this kernel does not have). */
export function readIfPresent(fs: CgroupFs, path: string): string | null {
  try {
    return fs.read(path);
  } catch (err) {
    if (errnoOf(err) === ENOENT) return null;
    throw cgroupError(err, path, `read ${path}`);
  }
}

/** `key value` lines (cpu.stat, memory.events, pids.events) as a map. */
export function parseKeyed(text: string | null): Map<string, number> {
  const out = new Map<string, number>();
  if (text === null) return out;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** A single-number file, or null when it is missing or says `max`. */
export function parseNumber(text: string | null): number | null {
  if (text === null) return null;
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

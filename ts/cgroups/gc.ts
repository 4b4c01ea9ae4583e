/**
 * Orphans. Before a container's cgroups exist, createCgroup() writes a marker
 * `<stateDir>/<id>.json` naming them and their owner — the process whose death
 * leaves them orphaned (the tsbox process, or for a detached container its
 * PID 1: Cgroup.setOwner). gc() removes the cgroups of every marker whose
 * owner is dead (killing what is left in them: `kill -9` of tsbox mid-run),
 * and every `tsbox/<id>` cgroup under the parents it scans that has no marker
 * and no process. A cgroup with a live owner, or without a marker but with
 * processes in it, is left alone.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';

import { processStart } from '../proc.js';
import { defaultStateRoot, ensureStateRoot } from '../state-root.js';

import { cgroupDir, parentPath, readLayout, readProcSource, type ProcSource } from './detect.js';
import { unifiedParent } from './delegation.js';
import { defaultParents, rootOwnedParents } from './root-parent.js';
import { cgroupError, EEXIST, ENOENT, errnoOf, realFs, type CgroupFs } from './fs.js';
import { listPids, removeCgroup, removeParents, type Placement } from './teardown.js';

export interface Marker extends Placement {
  id: string;
  ownerPid: number;
  /** The owner's start time (/proc/PID/stat field 22), so a recycled pid is not mistaken for it. */
  ownerStart: string | null;
  createdAt: string;
}

/** Container ids: a safe single path component. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * `cgroups` in this user's default state directory (ts/state-root.ts):
 * `/run/tsbox/cgroups` as root, whatever `--root` says. One for the host:
 * gc removes a `tsbox/<id>` cgroup no marker here names, and markers kept
 * per root let one root's gc take another's container mid-launch. Reading
 * it makes nothing; writing a marker there first makes sure the state root
 * is the user's own.
 */
export function defaultStateDir(): string {
  return posix.join(defaultStateRoot(), 'cgroups');
}


export function ownerAlive(m: Pick<Marker, 'ownerPid' | 'ownerStart'>): boolean {
  const start = processStart(m.ownerPid);
  return start !== null && (m.ownerStart === null || start === m.ownerStart);
}

const markerPath = (stateDir: string, id: string) => posix.join(stateDir, `${id}.json`);

/**
 * Writes the marker atomically (a temp file renamed or linked into place).
 * `exclusive`: fail with EEXIST when the id has a marker already — another
 * container's, which must not be overwritten (or removed by our cleanup).
 */
export function writeMarker(stateDir: string, m: Marker, exclusive = false): void {
  const path = markerPath(stateDir, m.id);
  const tmp = `${path}.${process.pid}.tmp`;
  if (stateDir === defaultStateDir()) ensureStateRoot(posix.dirname(stateDir));
  // Whether the temporary file is left to remove (a link leaves it; a
  // rename takes it; a failed write may have made it).
  let leftover = true;
  try {
    try {
      writeFileSync(tmp, `${JSON.stringify(m)}\n`, { mode: 0o600 });
    } catch (err) {
      // Not made yet, or removed, empty, by another container's end: make it.
      if (errnoOf(err) !== ENOENT) throw err;
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, `${JSON.stringify(m)}\n`, { mode: 0o600 });
    }
    if (exclusive) linkSync(tmp, path);
    else {
      renameSync(tmp, path);
      leftover = false;
    }
  } catch (err) {
    if (exclusive && errnoOf(err) === EEXIST) {
      throw cgroupError(err, path, `container id ${m.id} is in use: it has cgroups already`, 'container ids must be unique; if its container is gone, `tsbox gc` removes what it left');
    }
    throw cgroupError(err, path, 'write the cgroup marker that lets gc find orphans', 'the state directory must be writable: /run/tsbox as root; otherwise $XDG_RUNTIME_DIR/tsbox, /run/user/UID/tsbox, or tsbox-state-UID in the temporary directory');
  } finally {
    if (leftover) {
      try {
        unlinkSync(tmp);
      } catch {
        // Never made: the write failed before it.
      }
    }
  }
}

export function removeMarker(stateDir: string, id: string): void {
  rmSync(markerPath(stateDir, id), { force: true });
  // An ordinary user's state root may be in the temporary directory: what
  // is empty goes with the last marker (root's /run/tsbox stays).
  if (process.getuid?.() !== 0) removeIfEmpty(stateDir, posix.dirname(stateDir));
}

/** Removes each directory in turn while it is empty. */
export function removeIfEmpty(...dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      return; // Not empty (another container's), or gone.
    }
  }
}

/** The marker of container `id`; null when there is none, or it is not one of ours. */
export function readMarker(stateDir: string, id: string): Marker | null {
  try {
    const m = JSON.parse(readFileSync(markerPath(stateDir, id), 'utf8')) as Marker;
    return m.id === id && typeof m.ownerPid === 'number' && m.dirs && Array.isArray(m.parents) ? m : null;
  } catch {
    return null; // Gone, half-written by a crash between write and rename, or not ours: leave it.
  }
}

function readMarkers(stateDir: string): Marker[] {
  let names: string[];
  try {
    names = readdirSync(stateDir);
  } catch {
    return [];
  }
  const out: Marker[] = [];
  for (const n of names) {
    if (!n.endsWith('.json') || !ID_PATTERN.test(n.slice(0, -5))) continue;
    const m = readMarker(stateDir, n.slice(0, -5));
    if (m) out.push(m);
  }
  return out;
}

export interface GcOptions {
  /** The cgroup parent containers were created under, when it was configured. */
  parent?: string;
  stateDir?: string;
  /** For tests: the filesystem and /proc files to use. */
  fs?: CgroupFs;
  proc?: ProcSource;
  /** For tests: the caller's uid (default: this process's). */
  uid?: number;
}

/**
 * gc for one container: its cgroups (and the parents they leave empty, which
 * may be under another cgroup parent than a sweep's) and its marker go when
 * the marker, as it is now, names an owner that is gone. True when the
 * marker was collected.
 */
export function collectOne(id: string, opts: GcOptions = {}): boolean {
  const fs = opts.fs ?? realFs;
  const stateDir = opts.stateDir ?? defaultStateDir();
  const m = readMarker(stateDir, id);
  if (m === null || ownerAlive(m)) return false;
  removeCgroup(m, fs);
  removeParents(m.parents, fs);
  removeMarker(stateDir, id);
  return true;
}

/** Removes orphaned `tsbox/<id>` cgroups (see above); returns the ids removed. */
export function gc(opts: GcOptions = {}): string[] {
  const fs = opts.fs ?? realFs;
  const stateDir = opts.stateDir ?? defaultStateDir();
  const removed = new Set<string>();
  const problems: unknown[] = [];

  const markers = readMarkers(stateDir);
  const marked = new Set(markers.map((m) => m.id));
  for (const m of markers) {
    if (ownerAlive(m)) continue;
    // Its owner may have changed since the listing (a detached container's
    // cgroup passes from its creator, which then exits, to its monitor):
    // collectOne judges by the marker as it is now.
    try {
      const existed = Object.values(m.dirs).some((d) => fs.exists(d));
      if (collectOne(m.id, opts) && existed) removed.add(m.id);
    } catch (err) {
      problems.push(err);
    }
  }

  // Cgroups without a marker under the parents this process would use.
  const layout = readLayout(fs, opts.proc ?? readProcSource());
  const hierarchies: [string, string][] = [];
  // Every hierarchy a container has a cgroup in: named ones (name=systemd) too.
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  // Root's containers are where create() puts them (root-parent.ts); where it
  // refuses, there are none to find.
  const rootDefaults = uid === 0 && opts.parent === undefined ? rootOwnedParents(defaultParents(layout), fs) : null;
  const parentOf = (name: string, fallback: () => string): string | null => {
    const chosen = rootDefaults?.get(name) ?? fallback();
    return typeof chosen === 'string' ? chosen : null;
  };
  for (const [name, mount] of layout.v1) {
    const parent = parentOf(name, () => parentPath(layout, name, opts.parent));
    if (parent !== null) hierarchies.push([name, posix.join(cgroupDir(mount, parent), 'tsbox')]);
  }
  if (layout.unified) {
    const parent = parentOf('unified', () => unifiedParent(layout, fs, opts.parent, uid));
    if (parent !== null) hierarchies.push(['unified', posix.join(cgroupDir(layout.unified, parent), 'tsbox')]);
  }
  const found = new Map<string, Placement>();
  for (const [h, tsboxDir] of hierarchies) {
    let ids: string[] = [];
    try {
      ids = fs.subdirs(tsboxDir);
    } catch {
      continue;
    }
    for (const id of ids) {
      if (!ID_PATTERN.test(id) || marked.has(id)) continue;
      const p = found.get(id) ?? { dirs: {}, parents: [] };
      p.dirs[h] = posix.join(tsboxDir, id);
      p.parents.push(tsboxDir);
      found.set(id, p);
    }
  }
  for (const [id, p] of found) {
    // A marker is written before its cgroup exists: one that appeared since the
    // markers were read belongs to a container being created right now.
    if (existsSync(markerPath(stateDir, id))) continue;
    if (Object.values(p.dirs).some((d) => listPids(d, fs).length > 0)) continue;
    try {
      removeCgroup(p, fs);
      removed.add(id);
    } catch (err) {
      problems.push(err);
    }
  }
  removeParents(hierarchies.map(([, d]) => d), fs);
  if (problems.length > 0) throw problems[0];
  return [...removed];
}

/**
 * The processes in container `id`'s cgroup, from its marker (every process
 * of the container, exec'd ones too); null when it has no cgroup.
 */
export function containerPids(id: string, stateDir: string = defaultStateDir(), fs: CgroupFs = realFs): number[] | null {
  const m = readMarker(stateDir, id);
  const dir = m ? Object.values(m.dirs)[0] : undefined;
  return dir === undefined ? null : [...new Set(listPids(dir, fs))];
}

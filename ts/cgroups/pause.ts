/**
 * Pausing a container: every process of its cgroup stopped by the freezer
 * (runc's pause/resume, podman pause). The cgroup is found through its
 * marker (ts/cgroups/gc.ts). v1 and hybrid: the freezer hierarchy's
 * freezer.state; pure v2: cgroup.freeze.
 */
import { posix } from 'node:path';

import { TsboxError } from '../errors.js';
import { freeze, thaw } from './freezer.js';
import { realFs, type CgroupFs } from './fs.js';
import { defaultStateDir, readMarker } from './gc.js';

/** The freezer of container `id`'s cgroup: its version and directory; null without one. */
function freezerOf(id: string, stateDir: string, fs: CgroupFs): { version: 1 | 2; dir: string } | null {
  const m = readMarker(stateDir, id);
  if (!m) return null;
  if (m.dirs.freezer) return { version: 1, dir: m.dirs.freezer };
  const unified = m.dirs.unified;
  // cgroup.freeze: the v2 freezer (5.2+), which needs no controller.
  if (unified !== undefined && fs.exists(posix.join(unified, 'cgroup.freeze'))) return { version: 2, dir: unified };
  return null;
}

/** Freezes (`on`) or thaws container `id`; throws when it has no freezer or it does not settle. */
export function setPaused(id: string, on: boolean, stateDir: string = defaultStateDir(), fs: CgroupFs = realFs): void {
  const f = freezerOf(id, stateDir, fs);
  if (!f) {
    throw new TsboxError({ step: on ? 'pause' : 'resume', errno: 95, path: id.slice(0, 12), detail: 'the container has no cgroup with a freezer', hint: 'pausing needs a cgroup: as an ordinary user, a delegated one' });
  }
  if (!on) return thaw(f.version, f.dir, fs);
  if (!freeze(f.version, f.dir, fs)) {
    thaw(f.version, f.dir, fs);
    throw new TsboxError({ step: 'pause', errno: 16, path: id.slice(0, 12), detail: 'the container did not freeze within a second', hint: 'try again' });
  }
}

/** Whether container `id`'s cgroup is frozen. */
export function isPaused(id: string, stateDir: string = defaultStateDir(), fs: CgroupFs = realFs): boolean {
  const f = freezerOf(id, stateDir, fs);
  if (!f) return false;
  try {
    if (f.version === 1) return fs.read(posix.join(f.dir, 'freezer.state')).trim() === 'FROZEN';
    return fs.read(posix.join(f.dir, 'cgroup.freeze')).trim() === '1';
  } catch {
    return false;
  }
}

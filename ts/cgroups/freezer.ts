/**
 * freezer: stops every process of a cgroup so that none can fork while the
 * v1 teardown kills them one by one. v1: the freezer hierarchy's
 * freezer.state (FROZEN/THAWED); v2: cgroup.freeze, confirmed by
 * cgroup.events `frozen 1`. (On v2 tsbox kills with cgroup.kill, 5.14+, and
 * freezes only on older kernels.)
 */
import { posix } from 'node:path';

import { sleepSync } from '../sleep.js';
import { parseKeyed, type CgroupFs } from './fs.js';

/** How long a freeze may take before the teardown goes on without it. */
const FREEZE_WAIT_MS = 1000;

function frozen(version: 1 | 2, dir: string, fs: CgroupFs): boolean {
  try {
    if (version === 1) return fs.read(posix.join(dir, 'freezer.state')).trim() === 'FROZEN';
    return parseKeyed(fs.read(posix.join(dir, 'cgroup.events'))).get('frozen') === 1;
  } catch {
    return false;
  }
}

/**
 * Freezes the cgroup at `dir` and waits until the kernel says it is frozen.
 * Returns false when it could not (no freezer, the cgroup is gone, or it did
 * not settle in time); the caller then kills without it, in rounds.
 */
export function freeze(version: 1 | 2, dir: string, fs: CgroupFs): boolean {
  try {
    fs.write(posix.join(dir, version === 1 ? 'freezer.state' : 'cgroup.freeze'), version === 1 ? 'FROZEN' : '1');
  } catch {
    return false;
  }
  const end = Date.now() + FREEZE_WAIT_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (frozen(version, dir, fs)) return true;
    if (Date.now() >= end) return false;
    sleepSync(delay);
  }
}

export function thaw(version: 1 | 2, dir: string, fs: CgroupFs): void {
  try {
    fs.write(posix.join(dir, version === 1 ? 'freezer.state' : 'cgroup.freeze'), version === 1 ? 'THAWED' : '0');
  } catch {
    // Gone already: nothing is left frozen.
  }
}

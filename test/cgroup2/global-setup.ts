/**
 * Once for the cgroup2 suite: it runs only on a pure cgroup v2 kernel, as
 * root — inside the test VM (test/vm/run-cgroup2-suite.sh) — and afterwards
 * checks that it left no tsbox cgroup behind, and that gc removes the
 * shared `tsbox` parents it made.
 */
import { detectCgroupMode, gc } from '../../ts/cgroups/index.js';
import { tsboxDirs, tsboxParents } from './support.js';

export default function setup(): () => void {
  if (process.getuid?.() !== 0 || detectCgroupMode() !== 'v2') {
    throw new Error('the cgroup2 suite needs root on a pure cgroup v2 kernel: run test/vm/run-cgroup2-suite.sh, which boots the test VM (test/vm/README.md)');
  }
  const before = tsboxDirs();
  const parentsBefore = tsboxParents();
  return () => {
    const left = tsboxDirs().filter((d) => !before.includes(d));
    if (left.length > 0) throw new Error(`the cgroup2 suite left cgroups behind: ${left.join(', ')}`);
    // The shared parents stay after a container; gc takes the empty ones.
    gc();
    const parents = tsboxParents().filter((d) => !parentsBefore.includes(d));
    if (parents.length > 0) throw new Error(`gc left the tsbox parents the suite made: ${parents.join(', ')}`);
  };
}

/**
 * Once for the cgroup2 suite: it runs only on a pure cgroup v2 kernel, as
 * root — inside the test VM (test/vm/run-cgroup2-suite.sh) — and afterwards
 * checks that it left no tsbox cgroup behind.
 */
import { detectCgroupMode } from '../../ts/cgroups/index.js';
import { tsboxDirs } from './support.js';

export default function setup(): () => void {
  if (process.getuid?.() !== 0 || detectCgroupMode() !== 'v2') {
    throw new Error('the cgroup2 suite needs root on a pure cgroup v2 kernel: run test/vm/run-cgroup2-suite.sh, which boots the test VM (test/vm/README.md)');
  }
  const before = tsboxDirs();
  return () => {
    const left = tsboxDirs().filter((d) => !before.includes(d));
    if (left.length > 0) throw new Error(`the cgroup2 suite left cgroups behind: ${left.join(', ')}`);
  };
}

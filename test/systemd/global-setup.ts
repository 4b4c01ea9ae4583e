/**
 * Once for the systemd suite: it runs only where systemd is PID 1, on pure
 * cgroup v2, as root — the test VM booted with systemd
 * (TSBOX_VM_PROJECT=systemd test/vm/run-cgroup2-suite.sh) — and afterwards
 * checks that no tsbox scope or cgroup is left.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { detectCgroupMode } from '../../ts/cgroups/index.js';
import { findCgroupDirs, tsboxDirs } from '../cgroup2/support.js';

const scopes = (): string[] =>
  execFileSync('systemctl', ['list-units', '--all', '--no-legend', '--plain', 'tsbox-*.scope'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);

export default function setup(): () => void {
  if (process.getuid?.() !== 0 || detectCgroupMode() !== 'v2' || !existsSync('/run/systemd/system')) {
    throw new Error('the systemd suite needs root on pure cgroup v2 with systemd as PID 1: run TSBOX_VM_PROJECT=systemd test/vm/run-cgroup2-suite.sh, which boots the test VM with systemd (test/vm/README.md)');
  }
  const before = tsboxDirs();
  return () => {
    const left = [...tsboxDirs().filter((d) => !before.includes(d)), ...findCgroupDirs((n) => /^tsbox-.*\.scope$/.test(n)), ...scopes()];
    if (left.length > 0) throw new Error(`the systemd suite left cgroups or scopes behind: ${left.join(', ')}`);
  };
}

/** What a container run could leave on the host, for the suites' leftover checks. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

import { afterAll, beforeAll } from 'vitest';

/** Every per-container cgroup, `<anything>/tsbox/<id>`, in any hierarchy under /sys/fs/cgroup. */
export function tsboxCgroups(root = '/sys/fs/cgroup'): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 6) return;
    let names: string[] = [];
    try {
      names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const n of names) {
      if (n !== 'tsbox') {
        walk(`${dir}/${n}`, depth + 1);
        continue;
      }
      try {
        for (const id of readdirSync(`${dir}/tsbox`, { withFileTypes: true })) if (id.isDirectory()) out.push(`${dir}/tsbox/${id.name}`);
      } catch {
        // Removed while we looked.
      }
    }
  };
  walk(root, 0);
  return out;
}

/**
 * A throwaway ordinary user for the file's tests (no home, a shell), made
 * before them and removed after: `uid()` once they run.
 */
export function throwawayUser(name: string): { name: string; uid: () => number } {
  let uid = 0;
  beforeAll(() => {
    execFileSync('useradd', ['-M', '-s', '/bin/sh', name]);
    uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  });
  afterAll(() => {
    execFileSync('userdel', [name]);
  });
  return { name, uid: () => uid };
}

/** The CNI plugins' chains (CNI-FORWARD, CNI-HOSTPORT-DNAT, ...) in the filter and nat tables now. */
export function cniChains(): Set<string> {
  return new Set([...execFileSync('iptables-save', [], { encoding: 'utf8' }).matchAll(/^:(CNI-[A-Z-]+) /gm)].map((m) => m[1]!));
}

/**
 * Removes the CNI plugins' shared chains that were not there `before`, with
 * the jumps to them (the plugins never remove them): for a suite that ran
 * bridged containers, once none is left.
 */
export function removeCniChains(before: ReadonlySet<string>): void {
  for (const chain of cniChains()) {
    if (before.has(chain)) continue;
    for (const table of ['filter', 'nat']) {
      // Its jumps first (rules naming it in the built-in chains), then it.
      for (const line of execFileSync('iptables-save', ['-t', table], { encoding: 'utf8' }).split('\n')) {
        if (line.startsWith('-A ') && line.includes(`-j ${chain}`)) spawnSync('sh', ['-c', `iptables -w -t ${table} ${line.replace(/^-A/, '-D')}`]);
      }
      spawnSync('iptables', ['-w', '-t', table, '-F', chain]);
      spawnSync('iptables', ['-w', '-t', table, '-X', chain]);
    }
  }
}

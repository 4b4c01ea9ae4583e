/**
 * Once for the integration suite: checks it runs as root, builds the busybox
 * test rootfs with the probe, records the host's state, and afterwards checks
 * that the suite left nothing behind (mounts, processes, temp dirs).
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

import type { TestProject } from 'vitest/node';

import { gc } from '../../ts/cgroups/index.js';
import { tsboxParents } from '../cgroup2/support.js';
import { tsboxCgroups } from '../support/host.js';
import { buildTestRootfs } from '../support/rootfs.js';

declare module 'vitest' {
  export interface ProvidedContext {
    rootfs: string;
  }
}

const CONTAINERS_DIR = '/var/lib/containers';
const CONTAINERS_CACHE = `${CONTAINERS_DIR}/cache`;

/** Host state a container run could leak, in a comparable form. */
function snapshot(): { mounts: string[]; processes: string[]; temps: string[]; cgroups: string[]; states: string[] } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes('tsbox'))
    .map((l) => l.split(' ')[4] ?? l);
  const processes: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      // A zombie holds nothing but its pid: a detached container's monitor
      // that ended is one until init reaps it, which this VM's init does not.
      const zombie = /^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (comm.startsWith('tsbox') && !zombie) processes.push(`${pid} ${comm}`);
    } catch {
      // Gone while we looked.
    }
  }
  const temps = readdirSync(tmpdir()).filter((n) => n.startsWith('tsbox-'));
  const cgroups = tsboxCgroups();
  // Containers' state directories under root's state root: a test's container is removed by it.
  let states: string[] = [];
  try {
    states = readdirSync('/run/tsbox').filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    // No state root yet.
  }
  return { mounts, processes, temps, cgroups, states };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) {
    throw new Error('the integration suite needs root: it creates user namespaces with id ranges, mounts and cgroups. Run it with sudo (scripts/test.mjs does).');
  }
  const before = snapshot();
  const parentsBefore = tsboxParents();
  // skopeo (the image suite) and podman (test/oci) as root keep a blob-info
  // cache in /var/lib/containers/cache whatever their --root: the suite's
  // own, unless the host had it before. Only the cache is looked at when
  // /var/lib/containers was there already (a podman of the host's may have
  // made it with its default storage): the suite's cache goes all the same.
  const hadContainersDir = existsSync(CONTAINERS_DIR);
  const hadCache = existsSync(CONTAINERS_CACHE);
  const rootfs = await buildTestRootfs();
  project.provide('rootfs', rootfs.dir);
  return async () => {
    await rootfs.cleanup();
    if (!hadContainersDir) rmSync(CONTAINERS_DIR, { recursive: true, force: true });
    else if (!hadCache) rmSync(CONTAINERS_CACHE, { recursive: true, force: true });
    // Give the last helpers a moment to be reaped.
    let after = snapshot();
    for (let i = 0; i < 20; i++) {
      const leaked = [...after.processes.filter((p) => !before.processes.includes(p)), ...after.cgroups.filter((c) => !before.cgroups.includes(c))];
      if (leaked.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
      after = snapshot();
    }
    const problems: string[] = [];
    for (const key of ['mounts', 'processes', 'temps', 'cgroups', 'states'] as const) {
      const leaked = after[key].filter((x) => !before[key].includes(x));
      if (leaked.length > 0) problems.push(`${key}: ${leaked.join(', ')}`);
    }
    // The shared `tsbox` parents stay after a container (as Docker's do);
    // gc takes the empty ones, so the host is left as it was found.
    try {
      gc();
    } catch (err) {
      problems.push(`gc: ${(err as Error).message}`);
    }
    const parents = tsboxParents().filter((d) => !parentsBefore.includes(d));
    if (parents.length > 0) problems.push(`tsbox parents gc did not remove: ${parents.join(', ')}`);
    if (problems.length > 0) throw new Error(`the integration suite left state on the host — ${problems.join('; ')}`);
  };
}

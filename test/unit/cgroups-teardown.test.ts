// The v1 teardown's kill (ts/cgroups/teardown.ts) with the real pidfd calls
// of the addon, against a process of this test's own (a `sleep`, which no
// root is needed to signal). Its cgroup is a stand-in: cgroup.procs reads
// that list the sleeper for as long as the test says it is in the cgroup.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

import { afterEach, describe, expect, it } from 'vitest';

import { realFs, type CgroupFs } from '../../ts/cgroups/fs.js';
import { killCgroup } from '../../ts/cgroups/teardown.js';

const DIR = '/nonexistent/tsbox-teardown-test/pids/c1';

let sleeper: ChildProcess | null = null;

afterEach(() => {
  sleeper?.kill('SIGKILL');
  sleeper = null;
});

async function startSleeper(): Promise<ChildProcess> {
  sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  await once(sleeper, 'spawn');
  return sleeper;
}

/** The real pidfd calls; a cgroup at DIR whose cgroup.procs lists `pid` for the first `listed` reads, and nothing after. */
function standIn(pid: number, listed: number): { fs: CgroupFs; reads: () => number } {
  let reads = 0;
  const fs: CgroupFs = {
    ...realFs,
    read: (path) => {
      if (path !== `${DIR}/cgroup.procs`) throw Object.assign(new Error(`ENOENT: ${path}`), { errno: -2, code: 'ENOENT' });
      return ++reads <= listed ? `${pid}\n` : '';
    },
    subdirs: () => [],
    write: () => {
      throw new Error('no write expected: no freezer, no cgroup.kill');
    },
  };
  return { fs, reads: () => reads };
}

/** How the sleeper ended, or null while it still runs after `ms`. */
async function endedWithin(child: ChildProcess, ms: number): Promise<NodeJS.Signals | null> {
  if (child.signalCode !== null) return child.signalCode;
  const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), ms));
  const exit = once(child, 'exit').then(([, signal]) => signal as NodeJS.Signals);
  return Promise.race([exit, timer]);
}

describe('v1 teardown without a freezer: kills through a pidfd', () => {
  it('a pid still in the cgroup once its pidfd is open is killed', async () => {
    const child = await startSleeper();
    // Listed when teardown looks, when it lists what to kill, and when it looks again with the pidfd open.
    const { fs } = standIn(child.pid!, 3);
    killCgroup({ dirs: { pids: DIR }, parents: [] }, fs);
    expect(await endedWithin(child, 5000)).toBe('SIGKILL');
  });

  it('a pid that left the cgroup after the listing is not signalled: by then the number may be anyone\'s', async () => {
    const child = await startSleeper();
    // Listed when teardown looks and when it lists what to kill; gone after
    // (the container's process exited, and the sleeper stands for the host
    // process that got its number).
    const { fs, reads } = standIn(child.pid!, 2);
    killCgroup({ dirs: { pids: DIR }, parents: [] }, fs);
    expect(reads()).toBeGreaterThanOrEqual(2);
    expect(await endedWithin(child, 200)).toBeNull();
  });
});

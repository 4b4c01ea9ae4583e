/**
 * Whether a container's process ended in its setup (a start failure, which
 * the pool retries on a new sandbox) or as the command that ran is the
 * kernel's to say (has it exec'd?), never the process's name: a command the
 * container calls `tsbox-init` and that ends at once is that command's exit.
 */
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { spawn } from '../../ts/index.js';
import { scratchDir } from '../support/tsbox.js';

const rootfs = inject('rootfs');
// A busybox link called tsbox-init: busybox has no such applet, and exits
// 127 at once, as the tenant's command of the report did.
const bin = scratchDir('setup-or-command');
symlinkSync('/bin/busybox', join(bin, 'tsbox-init'));
const volumes = [`${bin}:/cmd:ro`];
// The name was only mistaken when the process had exited before its monitor
// looked, one time in a few: enough runs, side by side, to see it.
const RUNS = 24;

// A profile that kills the process at its execve: one that dies in its
// setup, before any command ran.
const killsExec = join(bin, 'kills-execve.json');
writeFileSync(killsExec, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['execve', 'execveat'], action: 'SCMP_ACT_KILL_PROCESS' }] }));

const statuses = (results: PromiseSettledResult<{ exitCode: number }>[]) =>
  results.map((r) => (r.status === 'fulfilled' ? r.value.exitCode : String(r.reason)));

describe('a command called tsbox-init that exits at once (127)', () => {
  for (const init of [false, true]) {
    it(`is the command's exit 127, not a start failure (init: ${init})`, async () => {
      const results = await Promise.allSettled(
        Array.from({ length: RUNS }, async () => (await spawn(['/cmd/tsbox-init'], { rootfs, init, volumes })).wait()),
      );
      expect(statuses(results)).toEqual(Array(RUNS).fill(127));
    });
  }

  it("exec'd into a running container: the exec's exit 127", async () => {
    await using c = await spawn(['sleep', '60'], { rootfs, volumes });
    const results = await Promise.allSettled(Array.from({ length: RUNS }, async () => (await c.exec(['/cmd/tsbox-init'])).wait()));
    expect(statuses(results)).toEqual(Array(RUNS).fill(127));
  });
});

describe('a process that dies before its exec', () => {
  for (const init of [false, true]) {
    it(`is still a start failure (init: ${init})`, async () => {
      const started = spawn(['true'], { rootfs, init, seccomp: killsExec });
      await expect(started.then((c) => c.wait())).rejects.toThrow(
        "start: the container's first process was killed by signal 31 during its setup, before the command started",
      );
    });
  }
});

/**
 * Regression tests for what a hostile review found about the processes
 * tsbox makes in a container before they exec (the container's first
 * process, and each one `exec` starts): while they are still tsbox-init's
 * copies, with the host's ids, root, working directory and descriptors,
 * nothing of the container may reach those. Each test fails on the code
 * before its fix.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, inject, it } from 'vitest';

import { spawn } from '../../ts/index.js';
import { scratchDir } from '../support/tsbox.js';

const rootfs = inject('rootfs');
const scratch = scratchDir('exec-escapes');

describe("a process exec'd into a container is never dumpable before it drops the host's state", () => {
  it('a container with CAP_SYS_PTRACE watching /proc/*/root through several execs never sees the host root', async () => {
    const marker = join(scratch, 'host-only-marker');
    await fs.writeFile(marker, '');
    // Every process the container can see, over and over, with shell
    // builtins only (a pass takes far less than an exec's wait to be placed
    // in its cgroups): a HIT is one whose root holds the host's marker,
    // i.e. is the host's /. Before the fix each exec gave hundreds.
    const watch = [
      'grep CapEff: /proc/self/status',
      'i=0',
      `while :; do for p in /proc/[0-9]*; do [ -e "$p/root${marker}" ] && echo "HIT $p"; done; i=$((i+1)); [ $i = 100 ] && { echo pass; i=0; }; done`,
    ].join('\n');
    await using c = await spawn(['sh', '-c', watch], { rootfs, capAdd: ['SYS_PTRACE'] });
    let out = '';
    let passes = 0;
    let notify: (() => void) | undefined;
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      passes = out.split('\n').filter((l) => l === 'pass').length;
      notify?.();
    });
    const nextPass = async () => {
      const seen = passes;
      while (passes <= seen) await new Promise<void>((r) => (notify = r));
    };
    await nextPass();
    // The watcher has CAP_SYS_PTRACE (bit 19), the reviewer's condition.
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(out)![1]}`);
    expect(capEff & (1n << 19n)).toBe(1n << 19n);
    for (let i = 0; i < 8; i++) {
      const e = await c.exec(['true']);
      await expect(e.wait()).resolves.toMatchObject({ exitCode: 0 });
    }
    // Everything the watcher printed during the execs has arrived.
    await nextPass();
    expect(new Set(out.split('\n').filter((l) => l.startsWith('HIT')))).toEqual(new Set());
  });
});

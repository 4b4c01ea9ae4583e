/** `tsbox logs [-f] NAME`: a detached container's output. */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { TsboxError } from '../errors.js';
import { parse } from './common.js';

const args = { follow: { type: 'boolean', alias: 'f', description: 'Keep printing new output until the container stops' } } as const;

const command = defineCommand({
  meta: { name: 'tsbox logs', description: "Print a detached container's output (stdout and stderr)" },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'logs', { min: 1, max: 1, usage: 'one container (name or id)' });
    if (!split) return;
    const c = open(split.command[0]!);
    const { log, name, id } = c.state();
    if (!log) {
      throw new TsboxError({
        step: 'config',
        errno: 0,
        path: name ?? id.slice(0, 12),
        detail: 'the container was not detached: its output went to the process that ran it, and tsbox kept none',
        hint: 'run it with -d to have its output kept for tsbox logs',
      });
    }
    // A full log becomes LOG.1 and a new LOG starts (logMaxSize; the
    // monitor's helper/log.rs): the older file first. Followed, the file
    // read is held open, so that its end is read after it was renamed.
    const previous = openLog(`${log}.1`);
    if (previous !== null) {
      copyFrom(previous, 0);
      closeSync(previous);
    }
    let fd = openLog(log);
    let offset = fd !== null ? copyFrom(fd, 0) : 0;
    try {
      if (split.values.get('follow') !== true) return;
      for (;;) {
        const stopped = c.state().status === 'stopped';
        if (fd !== null) offset = copyFrom(fd, offset);
        const now = inode(log);
        if (now !== null && (fd === null || now !== fstatSync(fd).ino)) {
          // Rotated: the rest of the old file (nothing is added to it
          // once the new one is in place), then the new one from its start.
          if (fd !== null) {
            copyFrom(fd, offset);
            closeSync(fd);
          }
          fd = openLog(log);
          offset = fd !== null ? copyFrom(fd, 0) : 0;
        }
        if (stopped) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      if (fd !== null) closeSync(fd);
    }
  },
});

function openLog(path: string): number | null {
  try {
    return openSync(path, 'r');
  } catch {
    return null;
  }
}

function inode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/** Prints `fd` from `offset` to its end, in chunks; the new offset. */
function copyFrom(fd: number, offset: number): number {
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, offset);
    if (n === 0) return offset;
    offset += n;
    process.stdout.write(Buffer.from(buf.subarray(0, n)));
  }
}

export default command;

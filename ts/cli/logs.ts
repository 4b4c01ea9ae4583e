/** `tsbox logs [-f] NAME`: a detached container's output. */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

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
    let offset = 0;
    const drain = () => {
      let size = 0;
      try {
        size = statSync(log).size;
      } catch {
        return;
      }
      if (size <= offset) return;
      const fd = openSync(log, 'r');
      try {
        const buf = Buffer.alloc(size - offset);
        const n = readSync(fd, buf, 0, buf.length, offset);
        offset += n;
        process.stdout.write(buf.subarray(0, n));
      } finally {
        closeSync(fd);
      }
    };
    drain();
    if (split.values.get('follow') !== true) return;
    while (c.state().status !== 'stopped') {
      await new Promise((r) => setTimeout(r, 200));
      drain();
    }
    drain();
  },
});

export default command;

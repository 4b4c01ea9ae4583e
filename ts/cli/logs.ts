/** `tsbox logs [-f] NAME`: a detached container's output. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { LogReader } from '../runtime/logfiles.js';
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
    // The files in order (ts/runtime/logfiles.ts); followed, the one
    // being read is held open and read on across the monitor's rotations.
    const reader = new LogReader(log, (chunk) => process.stdout.write(chunk));
    try {
      reader.start();
      if (split.values.get('follow') !== true) return;
      for (;;) {
        const stopped = c.state().status === 'stopped';
        reader.poll();
        if (stopped) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      reader.close();
    }
  },
});

export default command;

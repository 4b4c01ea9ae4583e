/** `tsbox rm [-f] NAME...`: remove stopped containers (running ones with -f). */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { eachContainer, parse } from './common.js';

const args = { force: { type: 'boolean', alias: 'f', description: 'Kill a running container first' } } as const;

const command = defineCommand({
  meta: { name: 'tsbox rm', description: 'Remove containers and what they left: their state, cgroup and log' },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'rm', { min: 1, max: Infinity, usage: 'one or more containers' });
    if (!split) return;
    await eachContainer(split.command, (ref) => open(ref).remove({ force: split.values.get('force') === true }));
  },
});

export default command;

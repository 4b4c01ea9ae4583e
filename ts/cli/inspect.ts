/** `tsbox inspect NAME...`: containers' state as JSON. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { parse } from './common.js';

const command = defineCommand({
  meta: { name: 'tsbox inspect', description: "Print containers' state (OCI state and tsbox's fields) as JSON" },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'inspect', { min: 1, max: Infinity, usage: 'one or more containers' });
    if (!split) return;
    console.log(JSON.stringify(split.command.map((ref) => open(ref).state()), null, 2));
  },
});

export default command;

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
    const states = split.command.map((ref) => open(ref).state());
    // A running bridged container's network, checked by its plugins (CNI CHECK): root only, as its setup.
    for (const s of states) {
      if (s.network?.mode === 'bridge' && s.status !== 'stopped' && s.pid > 0 && process.getuid?.() === 0) {
        s.network = { ...s.network, check: await (await import('../network/bridge.js')).checkNetwork(s.id, s.pid) };
      }
    }
    console.log(JSON.stringify(states, null, 2));
  },
});

export default command;

/** `tsbox gc`: removes what crashed tsbox runs and monitors left behind: their cgroups and state. */
import { defineCommand } from 'citty';

import { gc } from '../cgroups/index.js';
import { pruneIdRegistry } from '../idmap/index.js';
import { gcStates } from '../runtime/state.js';
import { parse } from './common.js';

const command = defineCommand({
  meta: {
    name: 'tsbox gc',
    description: 'Remove the cgroups and state of containers whose tsbox process or monitor died (kill -9, a crash). Every start does it too',
  },
  args: {},
  async run({ rawArgs, cmd }) {
    if (!(await parse(rawArgs, {}, cmd, 'gc', { min: 0, max: 0, usage: 'no arguments' }))) return;
    // State first: a container whose state goes leaves its cgroup an orphan.
    const states = gcStates();
    const removed = [...new Set([...gc(), ...states])];
    // The id registry's entries of containers that are gone.
    pruneIdRegistry();
    for (const id of removed) console.log(id);
    console.error(`tsbox: removed ${removed.length} orphaned cgroup${removed.length === 1 ? '' : 's'} and state${removed.length === 1 ? '' : 's'}`);
  },
});

export default command;

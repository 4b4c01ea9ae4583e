/** `tsbox gc`: removes what crashed tsbox runs and monitors left behind: their cgroups and state. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { defineCommand } from 'citty';

import { gc } from '../cgroups/index.js';
import { pruneIdRegistry } from '../idmap/index.js';
import { gcStates, stateRoot } from '../runtime/state.js';
import { parse } from './common.js';
import { NETWORK_DIR } from '../network/records.js';


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
    // A bridged container's address, veth and rules, once its monitor is gone
    // (its allowlist's keeper first, saying which container is killed for a keeper that is gone).
    const networks = [
      ...(existsSync(NETWORK_DIR) ? (await import('../network/bridge.js')).gcNetworks(undefined, undefined, (l) => console.error(l)) : []),
      // An ordinary user's pasta processes (its detached containers' keepers first).
      ...(existsSync(join(stateRoot(), 'network')) ? (await import('../network/pasta.js')).gcPasta(undefined, (l) => console.error(l)) : []),
    ];
    const removed = [...new Set([...gc(), ...states, ...networks])];
    // The id registry's entries of containers that are gone.
    pruneIdRegistry();
    for (const id of removed) console.log(id);
    console.error(`tsbox: removed ${removed.length} orphaned cgroup${removed.length === 1 ? '' : 's'} and state${removed.length === 1 ? '' : 's'}${networks.length > 0 ? ` (the network of ${networks.length} bridged container${networks.length === 1 ? '' : 's'})` : ''}`);
  },
});

export default command;

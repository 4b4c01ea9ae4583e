/** `tsbox gc`: removes what crashed tsbox runs left behind (their cgroups). */
import { defineCommand } from 'citty';

import { gc } from '../cgroups/index.js';

const command = defineCommand({
  meta: { name: 'tsbox gc', description: 'Remove the cgroups of containers whose tsbox process died (kill -9, a crash). tsbox run does this on start, too' },
  args: {},
  run() {
    const removed = gc();
    for (const id of removed) console.log(id);
    console.error(`tsbox: removed ${removed.length} orphaned cgroup${removed.length === 1 ? '' : 's'}`);
  },
});

export default command;

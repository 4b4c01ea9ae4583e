/** `tsbox import TAR NAME`: a one-layer image of a root filesystem tarball. */
import { defineCommand } from 'citty';

import { parse } from './common.js';

const args = { quiet: { type: 'boolean', alias: 'q', description: 'No progress' } } as const;

const command = defineCommand({
  meta: { name: 'tsbox import', description: 'Make a one-layer image named NAME of a root filesystem tarball (plain, gzip or zstd); it has no command: give one to tsbox run' },
  args: { ...args, tarball: { type: 'positional', required: true, valueHint: 'TAR', description: 'A tar of a root filesystem (plain, gzip or zstd)' }, name: { type: 'positional', required: true, valueHint: 'NAME', description: 'The image name: NAME[:TAG]' } },
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'import', { min: 2, max: 2, usage: 'a tarball and a name' });
    if (!split) return;
    const { importRootfs } = await import('../image/load.js');
    const { withProgress } = await import('../image/progress.js');
    const r = await withProgress(split.values.get('quiet') === true, (onProgress) => importRootfs(split.command[0]!, split.command[1]!, { onProgress }));
    console.log(r.name);
  },
});

export default command;

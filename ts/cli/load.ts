/** `tsbox load -i FILE`: images from a `docker save` archive or an OCI image layout. */
import { defineCommand } from 'citty';

import { TsboxError } from '../errors.js';
import { parse } from './common.js';

const args = {
  input: { type: 'string', alias: 'i', valueHint: 'FILE|DIR', description: 'A docker save archive (docker-archive), or an OCI image layout: a directory or a tar of one' },
  quiet: { type: 'boolean', alias: 'q', description: 'No progress' },
} as const;

const command = defineCommand({
  meta: { name: 'tsbox load', description: 'Load images from a docker save archive or an OCI image layout into the store, and print their names' },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'load', { min: 0, max: 0, usage: 'no arguments (the archive goes with -i)' });
    if (!split) return;
    const input = split.values.get('input') as string | undefined;
    if (input === undefined) throw new TsboxError({ step: 'config', errno: 0, path: '--input', detail: 'no archive given', hint: 'tsbox load -i FILE' });
    const { loadArchive } = await import('../image/load.js');
    const { withProgress } = await import('../image/progress.js');
    for (const r of await withProgress(split.values.get('quiet') === true, (onProgress) => loadArchive(input, { onProgress }))) console.log(r.name);
  },
});

export default command;

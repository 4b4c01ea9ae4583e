/** `tsbox rmi REF...`: remove images, and the layers no other image uses. */
import { defineCommand } from 'citty';

import { eachContainer, parse } from './common.js';

const args = { force: { type: 'boolean', alias: 'f', description: 'Remove the image even when a container was made from it' } } as const;

const command = defineCommand({
  meta: { name: 'tsbox rmi', description: 'Remove images from the store, and the layers and blobs no other image uses' },
  args: { ...args, refs: { type: 'positional', required: true, valueHint: 'REF...', description: 'Images, by name or by (a prefix of) their manifest digest' } },
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'rmi', { min: 1, max: Infinity, usage: 'one or more images' });
    if (!split) return;
    const { removeImage, WAITING_FOR_LAUNCH } = await import('../image/manage.js');
    const onWait = () => process.stderr.write(`${WAITING_FOR_LAUNCH}\n`);
    await eachContainer(split.command, (ref) => removeImage(ref, { force: split.values.get('force') === true, onWait }));
  },
});

export default command;

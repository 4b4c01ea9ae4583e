/** `tsbox image inspect REF`, `tsbox image prune`, `tsbox image export REF DIR`: look into, tidy and export the image store. */
import { defineCommand } from 'citty';

import { TsboxError } from '../errors.js';
import { parse } from './common.js';

const none = {} as const;

const command = defineCommand({
  meta: { name: 'tsbox image', description: 'Manage images: inspect REF (its record, config and layers as JSON), prune (remove layers and blobs no image uses), export REF DIR (an OCI bundle: config.json and rootfs)' },
  args: { command: { type: 'positional', required: true, valueHint: 'inspect REF | prune | export REF DIR', description: 'inspect: the image as JSON; prune: remove what no image uses; export: an OCI bundle' } },
  async run({ rawArgs, cmd }) {
    const [sub, ...rest] = rawArgs;
    if (sub === 'inspect') {
      const split = await parse(rest, none, cmd, 'image inspect', { min: 1, max: 1, usage: 'one image' });
      if (!split) return;
      const { inspectImage } = await import('../image/manage.js');
      process.stdout.write(`${JSON.stringify(inspectImage(split.command[0]!), null, 2)}\n`);
      return;
    }
    if (sub === 'prune') {
      const split = await parse(rest, none, cmd, 'image prune', { min: 0, max: 0, usage: 'no arguments' });
      if (!split) return;
      const { pruneImages, WAITING_FOR_LAUNCH } = await import('../image/manage.js');
      const removed = await pruneImages(undefined, () => process.stderr.write(`${WAITING_FOR_LAUNCH}\n`));
      for (const d of [...removed.layers, ...removed.blobs]) console.log(d);
      return;
    }
    if (sub === 'export') {
      const split = await parse(rest, none, cmd, 'image export', { min: 2, max: 2, usage: 'an image and a directory' });
      if (!split) return;
      const { exportImage } = await import('../image/export.js');
      const { defaultSpec } = await import('./oci.js');
      const out = await exportImage(split.command[0]!, split.command[1]!, defaultSpec(process.getuid?.() !== 0));
      console.log(out.dir);
      return;
    }
    if (sub === undefined || sub === '--help' || sub === '-h') {
      const { showCommandHelp } = await import('./help.js');
      await showCommandHelp(cmd, 'image');
      return;
    }
    throw new TsboxError({ step: 'config', errno: 0, path: sub, detail: 'unknown image command', hint: 'tsbox image inspect REF, tsbox image prune, or tsbox image export REF DIR' });
  },
});

export default command;

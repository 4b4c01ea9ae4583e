/** `tsbox pull REF`: pull an image from its registry into the store. */
import { defineCommand } from 'citty';

import { parse } from './common.js';

export const pullArgs = {
  quiet: { type: 'boolean', alias: 'q', description: 'No progress, only the manifest digest' },
  'insecure-registry': { type: 'string', valueHint: 'HOST[:PORT]', description: 'Allow plain http or an unverified certificate for this registry (repeatable; loopback registries may always use http)' },
} as const;

const command = defineCommand({
  meta: { name: 'tsbox pull', description: 'Pull an image from a registry into the store: NAME[:TAG] or NAME@sha256:DIGEST (alpine is docker.io/library/alpine:latest)' },
  args: { ...pullArgs, ref: { type: 'positional', required: true, valueHint: 'REF', description: 'The image: NAME[:TAG] or NAME@sha256:DIGEST' } },
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, pullArgs, cmd, 'pull', { min: 1, max: 1, usage: 'one image reference' });
    if (!split) return;
    const { pull } = await import('../image/pull.js');
    const quiet = split.values.get('quiet') === true;
    const { withProgress } = await import('../image/progress.js');
    const record = await withProgress(quiet, (onProgress) => pull(split.command[0]!, { onProgress, insecure: (split.values.get('insecure-registry') as string[] | undefined) ?? [] }));
    process.stdout.write(quiet ? `${record.digest}\n` : `${record.name}\n${record.digest}\n`);
  },
});

export default command;

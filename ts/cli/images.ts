/** `tsbox images`: the images in the store, with their sizes. */
import { defineCommand } from 'citty';

import { TsboxError } from '../errors.js';
import { parse } from './common.js';

const args = {
  format: { type: 'string', valueHint: 'table|json', description: 'Output format (default table)' },
  quiet: { type: 'boolean', alias: 'q', description: 'Only the names' },
} as const;

const command = defineCommand({
  meta: { name: 'tsbox images', description: 'List the images in the store, with the disk their layers use' },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'images', { min: 0, max: 0, usage: 'no arguments' });
    if (!split) return;
    const format = (split.values.get('format') as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json') throw new TsboxError({ step: 'config', errno: 0, path: '--format', detail: `unknown format "${format}"`, hint: 'table or json' });
    const { shownRecord, Store } = await import('../image/store.js');
    const { formatBytes } = await import('../image/progress.js');
    const store = new Store();
    const images = store.images().map((i) => ({ ...shownRecord(i), size: store.sizeOf(i) }));
    if (split.values.get('quiet') === true) {
      for (const i of images) console.log(i.name);
      return;
    }
    if (format === 'json') {
      process.stdout.write(`${JSON.stringify(images, null, 2)}\n`);
      return;
    }
    const rows = [['NAME', 'DIGEST', 'LAYERS', 'SIZE', 'CREATED'], ...images.map((i) => [i.name, i.digest.slice(7, 19), String(i.layers.length), formatBytes(i.size), i.created.replace(/\.\d+Z$/, 'Z')])];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) console.log(r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join('   '));
  },
});

export default command;

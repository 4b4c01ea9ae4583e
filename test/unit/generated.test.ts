// The generated TypeScript stays in step with the Rust it comes from. The
// wire types and tables are checked by cargo (tsbox-core's generated.rs);
// the addon's surface is napi-rs's declaration of crates/tsbox-napi, which
// only a build writes, so it is checked here against the build's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const { addonTypes } = (await import('../../scripts/gen-addon-types.mjs')) as { addonTypes: () => string };
const root = join(import.meta.dirname, '../..');

describe('generated TypeScript', () => {
  it('ts/generated/addon.ts is the declaration napi-rs wrote for the addon just built', () => {
    const committed = readFileSync(join(root, 'ts/generated/addon.ts'), 'utf8');
    // A stale copy fails here: run `npm run build && npm run generate`.
    expect(committed).toBe(addonTypes());
  });
});

describe('the options\' JSON Schema (issue 19)', () => {
  it('describes every option with its JSDoc in the schema, the text editors show for RunOptions', () => {
    const schema = JSON.parse(readFileSync(join(root, 'dist/tsbox.schema.json'), 'utf8')) as { properties: Record<string, { description?: string }> };
    const missing = Object.entries(schema.properties).filter(([, p]) => !p.description).map(([k]) => k);
    expect(missing).toEqual([]);
    expect(schema.properties.memory!.description).toBe('`-m/--memory`: the hard memory limit. v1 memory.limit_in_bytes, v2 memory.max.');
    expect(schema.properties.shmSize!.description).toBe("The size of /dev/shm (Docker's `--shm-size`). Default 64m.");
  });
});

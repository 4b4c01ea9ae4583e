#!/usr/bin/env node
// Writes dist/tsbox.schema.json, the JSON Schema of tsbox's options (config
// files and the API), generated from the one zod schema in ts/config/schema.ts.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { toJSONSchema } from 'zod/mini';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { runOptionsSchema } = await import(join(root, 'dist/config/schema.js'));
const schema = toJSONSchema(runOptionsSchema, { io: 'input', unrepresentable: 'any' });
schema.title = 'tsbox options';
schema.description = 'Options of tsbox run --config FILE and of the tsbox API (run, spawn); "command" gives the command when the file has it.';
schema.properties.command = { type: 'array', items: { type: 'string' }, minItems: 1, description: 'The command and its arguments' };
schema.properties.$schema = { type: 'string' };
writeFileSync(join(root, 'dist/tsbox.schema.json'), `${JSON.stringify(schema, null, 2)}\n`);

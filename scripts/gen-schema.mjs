#!/usr/bin/env node
// Writes dist/tsbox.schema.json, the JSON Schema of tsbox's options (config
// files and the API), generated from the one zod schema in ts/config/schema.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { toJSONSchema } from 'zod/mini';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { runOptionsSchema } = await import(join(root, 'dist/config/schema.js'));
const schema = toJSONSchema(runOptionsSchema.full(), { io: 'input', unrepresentable: 'any' });
schema.title = 'tsbox options';
schema.description = 'Options of tsbox run --config FILE and of the tsbox API (run, spawn); "command" gives the command when the file has it.';
schema.properties.command = { type: 'array', items: { type: 'string' }, minItems: 1, description: 'The command and its arguments' };
schema.properties.$schema = { type: 'string', description: 'The JSON Schema of this file (tsbox/schema.json), for editors' };
// Each option's description is its JSDoc in the schema's source, the same
// text editors show for RunOptions: one source for both.
const docs = { ...optionDocs(join(root, 'ts/config/schema.ts'), 'runOptionFields'), ...optionDocs(join(root, 'ts/cgroups/limits.ts'), 'cgroupLimitFields') };
for (const [name, prop] of Object.entries(schema.properties)) {
  if (docs[name] && !prop.description) prop.description = docs[name];
}
writeFileSync(join(root, 'dist/tsbox.schema.json'), `${JSON.stringify(schema, null, 2)}\n`);

/**
 * The JSDoc of each property of the object schema `name` in `file` (the
 * object literal of its strictObject call), by property name.
 */
export function optionDocs(file, name) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const docs = {};
  const visit = (node, inside) => {
    if (ts.isVariableDeclaration(node) && node.name.getText() === name) inside = true;
    if (inside && ts.isObjectLiteralExpression(node)) {
      for (const p of node.properties) {
        if (!ts.isPropertyAssignment(p)) continue;
        const text = ts.getJSDocCommentsAndTags(p).map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join('\n').trim();
        const key = p.name.getText().replace(/^['"]|['"]$/g, '');
        if (text && !(key in docs)) docs[key] = text.replace(/\s*\n\s*/g, ' ');
      }
      return;
    }
    ts.forEachChild(node, (c) => visit(c, inside));
  };
  visit(source, false);
  return docs;
}

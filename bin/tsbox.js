#!/usr/bin/env node
// The tsbox CLI: the bundle dist/cli.cjs (scripts/build.mjs), run as CommonJS.
// This file is CommonJS too (bin/package.json): Node starts a CommonJS entry
// faster than an ES module.
'use strict';
// The CLI's entry, for `tsbox run --trace` (ts/runtime/protocol.ts CLI_ENTRY).
// process.hrtime, not performance.now(): the global `performance` loads
// node:perf_hooks on first use, ~1.5 ms of every start.
globalThis[Symbol.for('tsbox.cliEntry')] = process.hrtime.bigint();
const { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');
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

/**
 * An installed tsbox has no cache in its package (it is made for one V8):
 * the first run makes one for its user, in `$XDG_CACHE_HOME/tsbox` (or
 * `~/.cache/tsbox`), named after this V8 and this bundle's size, times and inode.
 * V8's cached data is code, so it is read only from a directory and a file
 * this user owns that nobody else may write, and never through a symlink.
 * TSBOX_NO_CODE_CACHE=1 turns it off.
 */
const userCache = {
  dir() {
    const { env } = process;
    if (env.TSBOX_NO_CODE_CACHE === '1') return null;
    const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : null);
    return base ? join(base, 'tsbox') : null;
  },
  /** Ours alone: owned by this user, not a symlink, writable by nobody else. */
  private(path, type) {
    try {
      const st = lstatSync(path);
      return st.uid === process.geteuid() && (st.mode & 0o022) === 0 && (type === 'dir' ? st.isDirectory() : st.isFile());
    } catch {
      return false;
    }
  },
  file(dir) {
    // V8 checks a cache against its source's length only: a bundle of the same
    // size and time (installs that fix mtimes) must not get another's code.
    // Its inode and change time are this install's own (no archive sets them).
    const st = statSync(BUNDLE);
    return join(dir, `cli-${process.versions.v8}-${process.arch}-${st.size}-${Math.trunc(st.mtimeMs)}-${st.ino}-${Math.trunc(st.ctimeMs)}.cache`);
  },
  read() {
    try {
      const dir = this.dir();
      if (!dir || !this.private(dir, 'dir')) return undefined;
      const file = this.file(dir);
      return this.private(file, 'file') ? readFileSync(file) : undefined;
    } catch {
      return undefined;
    }
  },
  /** At exit: the cache of what this run compiled, written atomically, older ones removed. */
  write(script) {
    try {
      const dir = this.dir();
      if (!dir) return;
      const parent = dirname(dir);
      // Only under a cache directory of this user's (not root's writes into someone else's home).
      if (!this.private(parent, 'dir')) return;
      mkdirSync(dir, { mode: 0o700, recursive: true });
      if (!this.private(dir, 'dir')) return;
      const file = this.file(dir);
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600, flag: 'wx' });
      renameSync(tmp, file);
      for (const old of readdirSync(dir)) if (old.startsWith('cli-') && join(dir, old) !== file) rmSync(join(dir, old), { force: true });
    } catch {
      // A cache is only ever a saving.
    }
  },
};

/** Compiles the bundle (with `cachedData` when given) and runs it as a CommonJS module. */
function load(cachedData) {
  // ASCII (scripts/build.mjs checks it): latin1 is the same text, read without utf8's decoding.
  const source = readFileSync(BUNDLE, 'latin1');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: BUNDLE, cachedData });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
  return { cli: mod.exports.cli, script };
}

module.exports = { cachePath, load };

if (require.main === module) {
  const cached = readCache() ?? userCache.read();
  const { cli, script } = load(cached);
  if (process.env.TSBOX_DEBUG_CODE_CACHE === '1') process.stderr.write(`tsbox: code cache ${cached === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}\n`);
  // None, or one V8 refused: make this user's at exit, with what this run compiled.
  if (cached === undefined || script.cachedDataRejected) process.once('exit', () => userCache.write(script));
  cli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    // Once nothing is left to run (the event loop is empty: the output
    // written, every background step such as the collection of crashed runs
    // done), exit at once, 'exit' handlers and all: Node's teardown after it
    // (the addon's async runtime joined, the heap freed) is ~0.7 ms of every
    // run that the kernel does anyway.
    process.once('beforeExit', () => process.exit());
  });
}

#!/usr/bin/env node
// Builds everything a checkout needs to run: the napi addon (native/), the static
// tsbox-init helper beside it, the static test probe, the TypeScript (dist/), and
// the two bundles the package runs (see bundle() below).
// `npm run build -- --debug` builds the Rust parts without optimisation;
// `npm run build -- --ts` builds only the TypeScript and the bundles.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
const release = !process.argv.includes('--debug');
const triple = { x64: 'x86_64-unknown-linux-gnu', arm64: 'aarch64-unknown-linux-gnu' }[process.arch];
if (!triple) throw new Error(`tsbox builds on x86_64 and aarch64 Linux, not ${process.arch}`);

/**
 * dist/tsbox.js (the library: `import ... from 'tsbox'`) and dist/cli.cjs (the CLI,
 * run by bin/tsbox.js) (and dist/keeper.cjs, below) are each one file with zod inside (and citty, in the CLI's):
 * Node reads one file instead of ~40 of tsbox's and ~150 of zod's, and the
 * schemas, written with zod/mini, keep only the parts of zod they use. tsc's dist/
 * stays for the type declarations (and scripts/gen-schema.mjs).
 *
 * The CLI is CommonJS: a CommonJS entry and builtins taken with require() start
 * faster than ES modules (no module graph to link, no ES facade per builtin), and
 * what ts/cli loads with import() for one command is evaluated only when that
 * command runs. `import.meta.url` becomes the bundle's own file URL, so
 * ts/native.ts looks for native/ beside dist/, as the library does.
 */
/**
 * The builtins that `tsbox run` needs only for some containers (child_process for
 * newuidmap, net and stream for piped stdio, tty for a terminal) are required by
 * the CLI bundle when first used rather than at its start (child_process with
 * what it loads costs ~3 ms): each becomes a module of getters over the real one.
 */
const LAZY_BUILTINS = ['child_process', 'net', 'stream', 'stream/promises', 'tty'];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    // The stand-in's own require() of the builtin is left alone (namespace).
    b.onResolve({ filter: /^node:/ }, (a) => (LAZY_BUILTINS.includes(a.path.slice(5)) && a.namespace !== 'lazy-builtin' ? { path: a.path, namespace: 'lazy-builtin' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (a) => {
      const names = Object.keys(await import(a.path)).filter((n) => n !== 'default');
      const getters = names.map((n) => `  ${JSON.stringify(n)}: { enumerable: true, get: () => load()[${JSON.stringify(n)}] },`).join('\n');
      return { loader: 'js', contents: `let m;\nconst load = () => (m ??= require(${JSON.stringify(a.path)}));\nObject.defineProperties(module.exports, {\n${getters}\n});\n` };
    });
  },
};

/**
 * zod's code is inside the two bundles, and only the type declarations refer
 * to it (RunOptions is the input type of the options' schema). So the package
 * does not depend on zod (8 MB installed): it carries zod's declarations
 * (under 0.4 MB, with zod's licence) in dist/zod/, and tsbox's own
 * declarations import them from there.
 */
function vendorZodTypes() {
  const from = join(root, 'node_modules', 'zod');
  const to = join(root, 'dist', 'zod');
  rmSync(to, { recursive: true, force: true });
  for (const f of readdirSync(from, { recursive: true }).map(String)) {
    if (!f.endsWith('.d.ts') || f.startsWith('src/')) continue;
    mkdirSync(dirname(join(to, f)), { recursive: true });
    copyFileSync(join(from, f), join(to, f));
  }
  copyFileSync(join(from, 'LICENSE'), join(to, 'LICENSE'));
  const dist = join(root, 'dist');
  for (const f of readdirSync(dist, { recursive: true }).map(String)) {
    if (!f.endsWith('.d.ts') || f.startsWith('zod/')) continue;
    const file = join(dist, f);
    const text = readFileSync(file, 'utf8');
    const spec = `${relative(dirname(file), join(to, 'mini', 'index.js')).replace(/^(?!\.)/, './')}`;
    const out = text.replace(/(from |import\()(['"])zod\/mini\2/g, (_, how, q) => `${how}${q}${spec}${q}`);
    if (/(from |import\()['"]zod/.test(out)) throw new Error(`${file}: a zod import other than zod/mini; vendorZodTypes() must map it`);
    if (out !== text) writeFileSync(file, out);
  }
}

async function bundle() {
  const { build } = await import('esbuild');
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const common = { absWorkingDir: root, bundle: true, platform: 'node', target: 'node20', sourcemap: true, legalComments: 'none', logLevel: 'warning' };
  await build({
    ...common,
    entryPoints: ['ts/index.ts'],
    outfile: 'dist/tsbox.js',
    format: 'esm',
    // Neither names nor lines are minified: the library's users read its
    // stack traces, and Node prints the line an uncaught error came from
    // (one line of the whole bundle, minified). The source map ships too:
    // with --enable-source-maps the frames name ts/ files.
    minifySyntax: true,
  });
  await build({
    ...common,
    entryPoints: ['ts/cli/index.ts'],
    outfile: 'dist/cli.cjs',
    format: 'cjs',
    minify: true,
    plugins: [lazyBuiltins],
    define: { TSBOX_VERSION: JSON.stringify(version), 'import.meta.url': '__tsboxFileUrl' },
    banner: { js: '"use strict"; const __tsboxFileUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  // bin/tsbox.js reads the CLI's bundle as latin1, which V8 takes as it is
  // (utf8 decoding cost ~1 ms of every start): it must be ASCII. esbuild
  // escapes strings but not regular expressions: write \u00b5 there, not µ.
  const cli = readFileSync(join(root, 'dist/cli.cjs'));
  const wide = cli.findIndex((b) => b > 0x7f);
  if (wide !== -1) {
    // Not left behind for bin/tsbox.js to run garbled.
    rmSync(join(root, 'dist/cli.cjs'), { force: true });
    throw new Error(`dist/cli.cjs is not ASCII at byte ${wide} (${JSON.stringify(cli.subarray(Math.max(0, wide - 40), wide + 20).toString('utf8'))}): escape the character in the source (\\uXXXX)`);
  }
  // dist/keeper.cjs: a detached container's egress allowlist keeper
  // (ts/network/keeper.ts), a process of its own for as long as the
  // container runs: its resolver and reports, without the CLI or zod.
  await build({
    ...common,
    entryPoints: ['ts/network/keeper-main.ts'],
    outfile: 'dist/keeper.cjs',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    define: { 'import.meta.url': '__tsboxFileUrl' },
    banner: { js: '"use strict"; const __tsboxFileUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
}

/**
 * V8's code cache of the CLI bundle for this Node (bin/tsbox.js reads it): made
 * after running the CLI as an installed user's first `tsbox run` leaves it
 * (bin/tsbox.js makes theirs from what that run compiled): the modules, the
 * schemas and the flags (`tsbox run` with an option that fails validation),
 * an image's look-up (an image that is not in an empty store), and, where
 * this machine can start one, a container's launch (`tsbox run -- true`, the
 * host's root read-only) and an image's (an empty one-layer image made with
 * `tsbox import`, whose command is not found: the look-up of an image in
 * the store, its config and layers, the launch on them), each function then
 * compiled. Without the image's launch in the cache, `tsbox run IMAGE`
 * compiled that path on every start: ~1.5 ms more than a rootfs directory.
 * Made by this machine's Node, it is not part of the npm package
 * (package.json `files`).
 */
function codeCache() {
  for (const f of readdirSync(join(root, 'dist'))) if (/^cli\.cjs\..*\.cache$/.test(f)) rmSync(join(root, 'dist', f));
  const store = mkdtempSync(join(tmpdir(), 'tsbox-build-store-'));
  // The empty layer: one directory, archived by tar (a machine without tar makes the cache without the image's launch).
  const layer = join(store, 'layer.tar');
  mkdirSync(join(store, 'empty'));
  try {
    execFileSync('tar', ['-cf', layer, '-C', join(store, 'empty'), '.'], { stdio: 'ignore' });
  } catch {
    rmSync(layer, { force: true });
  }
  const warm = `
    const { existsSync, writeFileSync } = require('node:fs');
    const { cachePath, load } = require('./bin/tsbox.js');
    const { cli, script } = load();
    (async () => {
      const invalid = await cli(['run', '--memory', 'not-a-size', '--', 'true']);
      if (invalid !== 125) throw new Error('the warm-up run exited ' + invalid + ', not 125');
      const missing = await cli(['run', '--pull', 'never', 'tsbox-warm-up.invalid/none', 'true']);
      if (missing !== 125) throw new Error('the warm-up image run exited ' + missing + ', not 125');
      // A machine that cannot start a container (no user namespaces) makes the cache without the launch.
      await cli(['run', '--', 'true']);
      if (existsSync(${JSON.stringify(layer)}) && (await cli(['import', '--quiet', ${JSON.stringify(layer)}, 'tsbox-warm-up.invalid/empty:1'])) === 0) {
        await cli(['run', '--pull', 'never', 'tsbox-warm-up.invalid/empty:1', 'true']);
      }
      writeFileSync(cachePath(), script.createCachedData());
    })().then(() => process.exit(0), (err) => { process.exitCode = 1; throw err; });`;
  try {
    // The warm-up's output (an image's name, errors it provokes) is expected; a failure shows in the exit status.
    execFileSync(process.execPath, ['-e', warm], { cwd: root, stdio: 'ignore', env: { ...process.env, TSBOX_STORAGE: store }, timeout: 120_000 });
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

if (!process.argv.includes('--ts')) {
  mkdirSync(join(root, 'native'), { recursive: true });
  run('npx', ['napi', 'build', '--platform', ...(release ? ['--release'] : []), '--manifest-path', 'crates/tsbox-napi/Cargo.toml',
    '--package-json-path', 'package.json', '--output-dir', 'native', '--no-js', '--dts', 'index.d.ts']);
  // The helper and the probe are static executables: the helper needs nothing but
  // the kernel, and the probe runs inside minimal test rootfs images.
  run('bash', ['scripts/build-static.sh']);
  const init = join(root, 'target', 'static', triple, 'release', 'tsbox-init');
  // Copied beside and renamed over: a helper still running (a detached
  // container's monitor) keeps its old file, where a copy onto it would fail
  // with ETXTBSY.
  const tmp = join(root, 'native', `tsbox-init.${process.pid}.tmp`);
  copyFileSync(init, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, join(root, 'native', 'tsbox-init'));
}
run('npx', ['tsc', '-p', 'tsconfig.json']);
vendorZodTypes();
run(process.execPath, ['scripts/gen-schema.mjs']);
await bundle();
codeCache();

#!/usr/bin/env node
// Builds everything a checkout needs to run: the napi addon (native/), the static
// tsbox-init helper beside it, the static test probe, and the TypeScript (dist/).
// `npm run build -- --debug` builds the Rust parts without optimisation.
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
const release = !process.argv.includes('--debug');
const triple = { x64: 'x86_64-unknown-linux-gnu', arm64: 'aarch64-unknown-linux-gnu' }[process.arch];
if (!triple) throw new Error(`tsbox builds on x86_64 and aarch64 Linux, not ${process.arch}`);

mkdirSync(join(root, 'native'), { recursive: true });
run('npx', ['napi', 'build', '--platform', ...(release ? ['--release'] : []), '--manifest-path', 'crates/tsbox-napi/Cargo.toml',
  '--package-json-path', 'package.json', '--output-dir', 'native', '--no-js', '--dts', 'index.d.ts']);
// The helper and the probe are static executables: the helper needs nothing but
// the kernel, and the probe runs inside minimal test rootfs images.
run('bash', ['scripts/build-static.sh']);
const init = join(root, 'target', 'static', triple, 'release', 'tsbox-init');
copyFileSync(init, join(root, 'native', 'tsbox-init'));
chmodSync(join(root, 'native', 'tsbox-init'), 0o755);
run('npx', ['tsc', '-p', 'tsconfig.json']);
run(process.execPath, ['scripts/gen-schema.mjs']);

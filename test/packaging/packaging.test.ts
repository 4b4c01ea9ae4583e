/**
 * The packaging suite: tsbox as a user gets it. Packs the root package and the
 * host's platform package the way they are published (scripts/pack.mjs), installs
 * both into an empty project in a temporary directory, and runs tsbox from there,
 * outside the checkout, with TSBOX_NATIVE_DIR unset: the CLI through npx, a
 * five-line API script, and the loader. It catches a file left out of a package, a
 * lost run bit on tsbox-init and a loader that only works in a checkout.
 *
 * Packing from the checkout needs `npm run build` first (native/ and dist/). CI
 * points it at the tarballs its build jobs made instead:
 *   TSBOX_TEST_ROOT_TGZ      the root package (tsbox-<version>.tgz)
 *   TSBOX_TEST_PLATFORM_TGZ  the platform package (tsbox-linux-<arch>-<libc>-<version>.tgz)
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { platformTriple } from '../../ts/native.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const rootPkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; napi: { targets: string[] } };

let work = '';
let project = '';
let platform = '';
let packedFromCheckout = false;

/** The environment of everything run in the project: no override, nothing of an outer npm run. */
function projectEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'TSBOX_NATIVE_DIR' || k === 'INIT_CWD' || (k.toLowerCase().startsWith('npm_') && !keep.has(k.toLowerCase()))) continue;
    env[k] = v;
  }
  // The installed CLI makes its user's code cache: in the work directory, not this host's home.
  env.XDG_CACHE_HOME = join(work, 'cache');
  return env;
}

function run(cmd: string, args: string[], opts: { timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: project, env: projectEnv(), encoding: 'utf8', timeout: opts.timeout ?? 60_000 });
}

const describeRun = (r: SpawnSyncReturns<string>): string => `status ${r.status}${r.signal ? ` signal ${r.signal}` : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** Packs from the checkout with scripts/pack.mjs, or takes CI's tarballs. */
function tarballs(): { root: string; platform: string } {
  const root = process.env.TSBOX_TEST_ROOT_TGZ;
  const plat = process.env.TSBOX_TEST_PLATFORM_TGZ;
  if (root || plat) {
    if (!root || !plat) throw new Error('set both TSBOX_TEST_ROOT_TGZ and TSBOX_TEST_PLATFORM_TGZ, or neither');
    return { root: resolve(root), platform: resolve(plat) };
  }
  packedFromCheckout = true;
  for (const f of ['dist/tsbox.js', 'dist/cli.cjs', 'dist/keeper.cjs', `native/tsbox.${platform}.node`, 'native/tsbox-init']) {
    if (!existsSync(join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` before the packaging suite`);
  }
  const out = join(work, 'packs');
  const stdout = execFileSync(process.execPath, [join(REPO, 'scripts', 'pack.mjs'), '--root', '--platform', platform, '--out', out, '--json'], {
    cwd: REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const packed = JSON.parse(stdout) as { name: string; filename: string }[];
  const find = (name: string): string => {
    const p = packed.find((x) => x.name === name);
    if (!p) throw new Error(`pack.mjs did not pack ${name}`);
    return p.filename;
  };
  return { root: find('tsbox'), platform: find(`@tsbox/${platform}`) };
}

beforeAll(() => {
  platform = platformTriple();
  work = mkdtempSync(join(tmpdir(), 'tsbox-packaging-'));
  project = join(work, 'project');
  mkdirSync(project);
  const tgz = tarballs();
  // The tarball CI hands over must be for the platform this machine loads.
  expect(basename(tgz.platform)).toBe(`tsbox-${platform}-${rootPkg.version}.tgz`);
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'tsbox-packaging-test', private: true, type: 'module' }, null, 2)}\n`);
  // tsbox has no dependency but its platform package (zod is in the bundles, and its
  // declarations in dist/zod); --prefer-offline is the fallback should npm want the registry.
  // The other platforms' packages are optional and not found, which npm skips.
  const install = (mode: string): SpawnSyncReturns<string> =>
    run('npm', ['install', tgz.root, tgz.platform, mode, '--no-audit', '--no-fund', '--no-update-notifier'], { timeout: 240_000 });
  let r = install('--offline');
  if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) r = install('--prefer-offline');
  if (r.status !== 0) throw new Error(`npm install failed: ${describeRun(r)}`);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the installed packages', () => {
  it('tsbox holds the CLI and the library, each one bundle, with the types, not the native build', () => {
    const dir = join(project, 'node_modules', 'tsbox');
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/tsbox.js', 'bin/package.json', 'dist/tsbox.js', 'dist/cli.cjs', 'dist/keeper.cjs', 'dist/index.d.ts', 'dist/tsbox.schema.json']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readdirSync(dir).sort()).toEqual(['LICENSE', 'README.md', 'bin', 'dist', 'package.json']);
    const all = readdirSync(dir, { recursive: true }).map(String);
    expect(all.filter((f) => f.endsWith('.node'))).toEqual([]);
    // No tsc output or code cache besides the bundles (the keeper's too); the library's source map, so
    // that --enable-source-maps shows ts/ files in its stack traces (issue 19).
    expect(all.filter((f) => f.startsWith('dist') && !f.endsWith('.d.ts') && !statSync(join(dir, f)).isDirectory()).sort()).toEqual(['dist/cli.cjs', 'dist/keeper.cjs', 'dist/tsbox.js', 'dist/tsbox.js.map', 'dist/tsbox.schema.json', 'dist/zod/LICENSE']);
  });

  it('installs nothing else: zod is in the bundles, and its declarations in dist/zod, which a strict TypeScript build checks options against (issue 19)', () => {
    expect(existsSync(join(project, 'node_modules', 'zod'))).toBe(false);
    // A Node program's own @types/node (the checkout's here), and every declaration checked.
    const compilerOptions = { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2023', 'esnext.disposable'], skipLibCheck: false, typeRoots: [join(REPO, 'node_modules', '@types')], types: ['node'] };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['types.ts'] }));
    const tsc = (body: string) => {
      writeFileSync(join(project, 'types.ts'), `import { run, type RunOptions } from 'tsbox';\n${body}\n`);
      return run(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    };
    const good = tsc("const o: RunOptions = { memory: '64m', ulimits: { nofile: 1024 }, volumes: ['/srv:/srv:ro'] };\nexport const r = run(['true'], o);");
    expect(good.status, describeRun(good)).toBe(0);
    const bad = tsc("export const o: RunOptions = { memroy: '64m' };");
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toContain("'memroy' does not exist in type");
  });

  it("require('tsbox') works from CommonJS (Node's require of an ES module, which tsbox's Node versions have)", () => {
    writeFileSync(join(project, 'cjs.cjs'), "const { run, TsboxError } = require('tsbox');\nconsole.log(typeof run, typeof TsboxError);\n");
    const r = run(process.execPath, ['cjs.cjs']);
    expect(r.stdout, describeRun(r)).toBe('function function\n');
  });

  it("an uncaught TsboxError shows a line of source, not the whole bundle, and ts/ files with --enable-source-maps", () => {
    writeFileSync(join(project, 'uncaught.mjs'), "import { run } from 'tsbox';\nawait run(['true'], { memory: 1 });\n");
    const plain = run(process.execPath, ['uncaught.mjs']);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/^TsboxError: config\(memory\): 1: must be at least 6m/m);
    // Node prints the line the error came from: a line, not the minified bundle.
    expect(Math.max(...plain.stderr.split('\n').map((l) => l.length))).toBeLessThan(300);
    const mapped = run(process.execPath, ['--enable-source-maps', 'uncaught.mjs']);
    expect(mapped.stderr).toMatch(/at parseRunInput \(.*ts\/config\/schema\.ts:\d+:\d+\)/);
  });

  it('tsbox depends optionally on every platform package, at its own version', () => {
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules', 'tsbox', 'package.json'), 'utf8')) as { version: string; optionalDependencies?: Record<string, string>; scripts?: Record<string, string> };
    expect(pkg.version).toBe(rootPkg.version);
    // The checkout's guard against a plain `npm pack` stays in the checkout.
    expect(pkg.scripts?.prepack).toBeUndefined();
    const platforms = rootPkg.napi.targets.map((t) => {
      const [arch, , , libc] = t.split('-');
      return `@tsbox/linux-${arch === 'x86_64' ? 'x64' : 'arm64'}-${libc}`;
    });
    expect(pkg.optionalDependencies).toEqual(Object.fromEntries(platforms.map((p) => [p, rootPkg.version])));
  });

  it(`the platform package holds the addon and tsbox-init, mode 0755`, () => {
    const dir = join(project, 'node_modules', '@tsbox', platform);
    expect(readdirSync(dir).sort()).toEqual(['README.md', 'package.json', 'tsbox-init', `tsbox.${platform}.node`]);
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ name: `@tsbox/${platform}`, version: rootPkg.version, main: `tsbox.${platform}.node`, os: ['linux'] });
    expect(statSync(join(dir, 'tsbox-init')).mode & 0o777).toBe(0o755);
    if (packedFromCheckout) {
      const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
      expect(sha(join(dir, 'tsbox-init'))).toBe(sha(join(REPO, 'native', 'tsbox-init')));
      expect(sha(join(dir, `tsbox.${platform}.node`))).toBe(sha(join(REPO, 'native', `tsbox.${platform}.node`)));
    }
  });
});

describe('tsbox run from the installed package', () => {
  it('npx tsbox run -- true exits 0 and prints nothing but notes', () => {
    const r = run('npx', ['--no', 'tsbox', 'run', '--', 'true']);
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout).toBe('');
    // Run by a user without a subordinate id range, tsbox notes how ids map.
    expect(r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('tsbox: note:'))).toEqual([]);
  });

  it("passes the command's exit status and output through", () => {
    const r = run('npx', ['--no', 'tsbox', 'run', '--hostname', 'packaged', '--', 'sh', '-c', 'echo "in $(hostname)"; exit 7']);
    expect(r.status, describeRun(r)).toBe(7);
    expect(r.stdout).toBe('in packaged\n');
  });

  it('npx tsbox --version names the installed version', () => {
    // `--` keeps npx from taking --version for itself.
    const r = run('npx', ['--no', '--', 'tsbox', '--version']);
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stdout.trim()).toBe(`tsbox ${rootPkg.version}`);
  });

  it("makes its user's V8 code cache on the first run and uses it after; a cache directory others may write is left alone", () => {
    const cache = join(work, 'cache');
    rmSync(cache, { recursive: true, force: true });
    mkdirSync(cache, { mode: 0o700 });
    const version = (extra: NodeJS.ProcessEnv = {}) =>
      spawnSync(process.execPath, [join(project, 'node_modules', 'tsbox', 'bin', 'tsbox.js'), '--version'], { cwd: project, env: { ...projectEnv(), TSBOX_DEBUG_CODE_CACHE: '1', ...extra }, encoding: 'utf8' });
    // The bundle's time fixed, as installs from the Nix store have it (1 s after the epoch).
    const bundle = join(project, 'node_modules', 'tsbox', 'dist', 'cli.cjs');
    utimesSync(bundle, 1, 1);
    const first = version();
    expect(first.status, describeRun(first)).toBe(0);
    expect(first.stderr).toBe('tsbox: code cache none\n');
    const files = readdirSync(join(cache, 'tsbox'));
    expect(files).toHaveLength(1);
    expect(statSync(join(cache, 'tsbox')).mode & 0o777).toBe(0o700);
    expect(statSync(join(cache, 'tsbox', files[0]!)).mode & 0o777).toBe(0o600);
    const second = version();
    expect(second.stdout).toBe(first.stdout);
    expect(second.stderr).toBe('tsbox: code cache used\n');
    // Another user could have written it: not read, not rewritten.
    chmodSync(join(cache, 'tsbox'), 0o777);
    const shared = version();
    expect(shared.stdout).toBe(first.stdout);
    expect(shared.stderr).toBe('tsbox: code cache none\n');
    expect(readdirSync(join(cache, 'tsbox'))).toEqual(files);
    expect(version({ TSBOX_NO_CODE_CACHE: '1' }).stderr).toBe('tsbox: code cache none\n');
    // V8 checks a cache against its source's length only: a bundle changed in
    // place with the same size and time (installs that fix mtimes) must run
    // its own code, not the cache's. Here, a version with one digit changed.
    chmodSync(join(cache, 'tsbox'), 0o700);
    const was = statSync(bundle);
    const old = JSON.stringify(first.stdout.trim().split(' ')[1]);
    const changed = `${old.slice(0, -2)}${old.at(-2) === '9' ? '8' : '9'}"`;
    const source = readFileSync(bundle, 'latin1');
    expect(source.split(old)).toHaveLength(2);
    writeFileSync(bundle, source.replace(old, changed), 'latin1');
    utimesSync(bundle, 1, 1);
    expect(statSync(bundle)).toMatchObject({ size: was.size, mtimeMs: was.mtimeMs });
    const edited = version();
    expect(edited.stdout).toBe(`tsbox ${JSON.parse(changed) as string}\n`);
    expect(edited.stderr).toBe('tsbox: code cache none\n');
    writeFileSync(bundle, source, 'latin1');
  });

  it('the five-line API script runs a container', () => {
    writeFileSync(
      join(project, 'api.mjs'),
      [
        "import { spawn } from 'tsbox';",
        "const c = await spawn(['sh', '-c', 'echo \"hello from $(hostname)\"'], { hostname: 'packaged' });",
        "let out = ''; c.stdout.on('data', (d) => { out += d; });",
        'const { exitCode } = await c.wait();',
        'console.log(JSON.stringify({ exitCode, out }));',
      ].join('\n'),
    );
    const r = run(process.execPath, ['api.mjs']);
    expect(r.status, describeRun(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ exitCode: 0, out: 'hello from packaged\n' });
  });

  it('loads the addon and tsbox-init from the platform package, not from the checkout', () => {
    // The trace names the tsbox-init that was started, which is looked for beside the addon.
    writeFileSync(join(project, 'trace.mjs'), "import { run } from 'tsbox'; process.exitCode = (await run(['true'], { trace: true })).exitCode;\n");
    const init = join(realpathSync(join(project, 'node_modules', '@tsbox', platform)), 'tsbox-init');
    for (const r of [run('npx', ['--no', 'tsbox', 'run', '--trace', '--', 'true']), run(process.execPath, ['trace.mjs'])]) {
      expect(r.status, describeRun(r)).toBe(0);
      expect(r.stderr, describeRun(r)).toContain(`helper: ${init} pid=`);
      expect(r.stderr).not.toContain(REPO);
    }
    // Neither bundle holds a path of the machine that built it.
    for (const f of ['dist/cli.cjs', 'dist/tsbox.js']) expect(readFileSync(join(project, 'node_modules', 'tsbox', f), 'utf8')).not.toContain(REPO);
  });

  it.each([
    ['darwin', 'x64', /^tsbox: load\(darwin-x64\): macOS is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl/],
    ['win32', 'x64', /^tsbox: load\(win32-x64\): Windows is not supported; .*WSL 2/],
    ['linux', 'ia32', /^tsbox: load\(linux-ia32\): 32-bit ia32 is not supported; tsbox runs on Linux x86_64 and aarch64, with glibc or musl$/],
  ])('on %s %s the CLI says in one line what is supported', (os, arch, message) => {
    // Pretends to be another platform before tsbox starts.
    const pretend = `data:text/javascript,Object.defineProperty(process,'platform',{value:'${os}'});Object.defineProperty(process,'arch',{value:'${arch}'})`;
    const r = run(process.execPath, ['--import', pretend, join(project, 'node_modules', '.bin', 'tsbox'), 'run', '--', 'true']);
    expect(r.status, describeRun(r)).toBe(125);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd()).toMatch(message);
  });
});

describe('packing the checkout (issue 19, item 7)', () => {
  it('a plain `npm pack` is refused, naming the two commands that pack tsbox, and writes nothing', () => {
    const out = mkdtempSync(join(tmpdir(), 'tsbox-plainpack-'));
    try {
      const r = spawnSync('npm', ['pack', '--pack-destination', out], { cwd: REPO, env: projectEnv(), encoding: 'utf8', timeout: 60_000 });
      expect(r.status, describeRun(r)).not.toBe(0);
      expect(r.stderr).toContain('tsbox: a plain `npm pack` of the checkout makes a package that cannot run: tsbox is published as two packages.');
      expect(r.stderr).toContain('npm run pack:platform');
      expect(r.stderr).toContain('npm run pack:root');
      expect(readdirSync(out)).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

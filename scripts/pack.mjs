#!/usr/bin/env node
// Packs tsbox for npm, the way it is published: the platform package
// @tsbox/<platform> (the addon and the static tsbox-init, mode 0755) and the root
// package `tsbox` (with its optionalDependencies on every platform package).
//
//   node scripts/pack.mjs                       the host's platform package, from native/
//   node scripts/pack.mjs --root                the root package (needs `npm run build` first)
//   node scripts/pack.mjs --platform linux-arm64-musl --from DIR --out DIR
//   options: --repository URL (stamped into every package: npm provenance checks it),
//            --json (print what was packed as JSON instead of one tarball path a line)
//
// Each package is staged in a temporary directory and packed from there, so the
// checkout is never modified. The root package's optionalDependencies are written
// at pack time, from package.json's napi.targets: listing them in the checkout's
// package.json would make `npm ci` fail until every platform package of that
// version is on the registry.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** `x86_64-unknown-linux-gnu` → `linux-x64-gnu`. */
export function platformOf(triple) {
  const m = /^(x86_64|aarch64)-unknown-linux-(gnu|musl)$/.exec(triple);
  if (!m) throw new Error(`napi.targets: ${triple} is not a target tsbox packs (x86_64/aarch64, linux, gnu/musl)`);
  return `linux-${m[1] === 'x86_64' ? 'x64' : 'arm64'}-${m[2]}`;
}

/** The host's platform, as the loader (ts/native.ts) picks it. */
export function hostPlatform() {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    throw new Error(`tsbox packs on Linux x86_64 and aarch64, not ${process.platform}-${process.arch}; pass --platform`);
  }
  if (process.report) process.report.excludeNetwork = true;
  const musl = !process.report?.getReport()?.header?.glibcVersionRuntime;
  return `linux-${process.arch}-${musl ? 'musl' : 'gnu'}`;
}

const ELF_MACHINE = { x64: 62, arm64: 183 };

/**
 * Checks an ELF file's class, machine and linking: `static` means no program
 * interpreter (PT_INTERP), that is, no dynamic loader and no shared library.
 */
export function checkElf(path, arch, { static: wantStatic = false, shared = false } = {}) {
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(64);
  try {
    readSync(fd, head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
    if (head[4] !== 2 || head[5] !== 1) throw new Error(`${path} is not a 64-bit little-endian ELF file`);
    const type = head.readUInt16LE(16);
    const machine = head.readUInt16LE(18);
    if (machine !== ELF_MACHINE[arch]) throw new Error(`${path} is built for ELF machine ${machine}, not ${arch} (${ELF_MACHINE[arch]})`);
    if (shared && type !== 3) throw new Error(`${path} is not a shared object (ELF type ${type})`);
    if (wantStatic) {
      const phoff = Number(head.readBigUInt64LE(32));
      const phentsize = head.readUInt16LE(54);
      const phnum = head.readUInt16LE(56);
      const ph = Buffer.alloc(phentsize * phnum);
      readSync(fd, ph, 0, ph.length, phoff);
      for (let i = 0; i < phnum; i++) {
        if (ph.readUInt32LE(i * phentsize) === 3) {
          throw new Error(`${path} is dynamically linked (it has a program interpreter); tsbox-init must be static (build it with scripts/build-static.sh or -C target-feature=+crt-static)`);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Runs `npm pack` on a staged directory; returns npm's JSON record of the tarball. */
function npmPack(dir, out) {
  const stdout = execFileSync('npm', ['pack', dir, '--pack-destination', out, '--json', '--ignore-scripts'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [record] = JSON.parse(stdout);
  return { name: record.name, version: record.version, filename: join(out, record.filename), integrity: record.integrity, files: record.files.map(({ path, size, mode }) => ({ path, size, mode })) };
}

function stage(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'tsbox-pack-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The root manifest and the platforms it ships, with their manifests checked against it. */
function manifests() {
  const pkg = readJson(join(root, 'package.json'));
  const platforms = (pkg.napi?.targets ?? []).map(platformOf);
  if (platforms.length === 0) throw new Error('package.json napi.targets lists no target');
  const metas = new Map();
  for (const platform of platforms) {
    const path = join(root, 'npm', platform, 'package.json');
    if (!existsSync(path)) throw new Error(`${path} is missing (napi.targets lists ${platform})`);
    const meta = readJson(path);
    const [, cpu, abi] = platform.split('-');
    const problems = [];
    if (meta.name !== `@tsbox/${platform}`) problems.push(`name is ${meta.name}, not @tsbox/${platform}`);
    if (meta.version !== pkg.version) problems.push(`version is ${meta.version}, not the root's ${pkg.version}`);
    if (meta.main !== `tsbox.${platform}.node`) problems.push(`main is ${meta.main}, not tsbox.${platform}.node`);
    if (JSON.stringify(meta.os) !== '["linux"]') problems.push('os is not ["linux"]');
    if (JSON.stringify(meta.cpu) !== JSON.stringify([cpu])) problems.push(`cpu is not ["${cpu}"]`);
    if (JSON.stringify(meta.libc) !== JSON.stringify([abi === 'gnu' ? 'glibc' : 'musl'])) problems.push(`libc is not ["${abi === 'gnu' ? 'glibc' : 'musl'}"]`);
    const files = new Set(meta.files ?? []);
    if (files.size !== 2 || !files.has(`tsbox.${platform}.node`) || !files.has('tsbox-init')) problems.push(`files must be exactly tsbox.${platform}.node and tsbox-init`);
    if (problems.length > 0) throw new Error(`npm/${platform}/package.json: ${problems.join('; ')}`);
    metas.set(platform, meta);
  }
  return { pkg, platforms, metas };
}

/** Packs @tsbox/<platform> from a directory holding tsbox.<platform>.node and tsbox-init. */
export function packPlatform({ platform, from, out, repository }) {
  const { metas } = manifests();
  const meta = metas.get(platform);
  if (!meta) throw new Error(`${platform} is not among package.json napi.targets (${[...metas.keys()].join(', ')})`);
  const arch = platform.split('-')[1];
  const addon = join(from, `tsbox.${platform}.node`);
  const init = join(from, 'tsbox-init');
  for (const f of [addon, init]) if (!existsSync(f)) throw new Error(`${f} is missing; build it first (npm run build, or .github/scripts/build-target.sh)`);
  checkElf(addon, arch, { shared: true });
  checkElf(init, arch, { static: true });
  return stage((dir) => {
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(repository ? { ...meta, repository: { type: 'git', url: repository } } : meta, null, 2)}\n`);
    copyFileSync(join(root, 'npm', platform, 'README.md'), join(dir, 'README.md'));
    copyFileSync(addon, join(dir, `tsbox.${platform}.node`));
    copyFileSync(init, join(dir, 'tsbox-init'));
    chmodSync(join(dir, `tsbox.${platform}.node`), 0o644);
    chmodSync(join(dir, 'tsbox-init'), 0o755);
    const packed = npmPack(dir, out);
    const paths = packed.files.map((f) => f.path).sort();
    const want = ['README.md', 'package.json', 'tsbox-init', `tsbox.${platform}.node`].sort();
    if (JSON.stringify(paths) !== JSON.stringify(want)) throw new Error(`${packed.filename} holds ${paths.join(', ')}, not ${want.join(', ')}`);
    const mode = packed.files.find((f) => f.path === 'tsbox-init')?.mode;
    if (mode !== undefined && (mode & 0o777) !== 0o755) throw new Error(`${packed.filename}: tsbox-init has mode ${mode.toString(8)}, not 755`);
    return packed;
  });
}

/** Packs the root package `tsbox`, with optionalDependencies on every platform package. */
export function packRoot({ out, repository }) {
  const { pkg, platforms } = manifests();
  for (const f of ['tsbox.js', 'cli.cjs', 'keeper.cjs', 'index.d.ts']) {
    if (!existsSync(join(root, 'dist', f))) throw new Error(`dist/${f} is missing; run \`npm run build\` (or \`npm run build:ts\`) first`);
  }
  // npm's own list of what the package holds (files, README, ...), copied as is.
  const listing = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  const files = listing[0].files.map((f) => f.path).filter((p) => p !== 'package.json');
  const leaked = files.filter((p) => /^(native|npm|ts|test|crates|target)\//.test(p) || p.endsWith('.node'));
  if (leaked.length > 0) throw new Error(`package.json files lets in what the root package must not ship: ${leaked.join(', ')}`);
  return stage((dir) => {
    for (const path of files) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      cpSync(join(root, path), join(dir, path));
    }
    const manifest = { ...pkg, optionalDependencies: Object.fromEntries(platforms.map((p) => [`@tsbox/${p}`, pkg.version])) };
    // The checkout's guard against a plain `npm pack` is not the package's.
    if (manifest.scripts) manifest.scripts = Object.fromEntries(Object.entries(manifest.scripts).filter(([k]) => k !== 'prepack'));
    if (repository) manifest.repository = { type: 'git', url: repository };
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return npmPack(dir, out);
  });
}

function main() {
  const { values } = parseArgs({
    options: {
      platform: { type: 'string' },
      from: { type: 'string' },
      root: { type: 'boolean', default: false },
      out: { type: 'string' },
      repository: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const out = resolve(values.out ?? '.');
  mkdirSync(out, { recursive: true });
  const packed = [];
  if (values.platform || !values.root) {
    const platform = values.platform ?? hostPlatform();
    packed.push(packPlatform({ platform, from: resolve(values.from ?? join(root, 'native')), out, repository: values.repository }));
  }
  if (values.root) packed.push(packRoot({ out, repository: values.repository }));
  console.log(values.json ? JSON.stringify(packed, null, 2) : packed.map((p) => p.filename).join('\n'));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    console.error(`pack: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

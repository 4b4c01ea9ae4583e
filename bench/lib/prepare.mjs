// Builds what every peer of the bench runs, once, in a state directory the bench
// owns (bench/setup.sh DIR, or bench/run.mjs through it):
//
//   DIR/tsbox-test-rootfs-*/   the busybox-static rootfs, made by the test suite's
//                              buildTestRootfs() (test/support/rootfs.ts)
//   DIR/oci-true/config.json   OCI bundles for runc and crun: `runc spec`, adjusted
//   DIR/oci-sleep/config.json  (same rootfs; /bin/true, or `sleep 1` for the memory
//                              and isolation check)
//   DIR/store/                 an image store (TSBOX_STORAGE) holding the same rootfs as
//                              the one-layer image localhost/bench-rootfs:1 (tsbox import)
//   DIR/seccomp.json           the seccomp profile runc and crun get (lib/make-seccomp.py)
//   DIR/seccomp.bpf            the same rules compiled for `bwrap --seccomp`
//   DIR/runc, DIR/crun         the runtimes' --root state directories
//   DIR/empty                  the empty file that masks cgroup.controllers for crun
//   DIR/manifest.json          the paths above, read by bench/run.mjs
//
// Usage: node bench/lib/prepare.mjs DIR
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import ts from 'typescript';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The same host range tsbox maps container root to (ts/config/defaults.ts). */
const { ROOT_MAP_BASE, ROOT_MAP_SIZE } = await import(pathToFileURL(join(REPO, 'dist/config/defaults.js')).href);

/** The cgroup's pids limit runc and crun write (a limit, as a default container gets). */
export const PIDS_LIMIT = 1024;

/**
 * Loads test/support/rootfs.ts: transpiled with the project's TypeScript into the
 * state directory, so the bench builds the very rootfs the tests use.
 */
async function loadRootfsBuilder(dir) {
  const src = readFileSync(join(REPO, 'test/support/rootfs.ts'), 'utf8');
  const { outputText } = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  });
  const file = join(dir, 'rootfs-builder.mjs');
  writeFileSync(file, outputText);
  const mod = await import(pathToFileURL(file).href);
  return { build: mod.buildTestRootfs, probePath: join(REPO, 'target/static', `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-unknown-linux-gnu`, 'release/tsbox-probe') };
}

/** `runc spec` in `dir`, then the bench's adjustments: one config for runc and crun. */
function ociBundle(dir, { rootfs, args, seccomp }) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'config.json');
  rmSync(file, { force: true }); // runc spec refuses to overwrite
  execFileSync('runc', ['spec', '--bundle', dir]);
  const c = JSON.parse(readFileSync(file, 'utf8'));
  c.root = { path: rootfs, readonly: true };
  c.hostname = 'bench';
  Object.assign(c.process, { terminal: false, args, user: { uid: 0, gid: 0 }, noNewPrivileges: true });
  // runc spec has pid, network, ipc, uts and mount; full isolation adds user and cgroup.
  const have = new Set(c.linux.namespaces.map((n) => n.type));
  for (const type of ['user', 'cgroup']) if (!have.has(type)) c.linux.namespaces.push({ type });
  const map = [{ containerID: 0, hostID: ROOT_MAP_BASE, size: ROOT_MAP_SIZE }];
  c.linux.uidMappings = map;
  c.linux.gidMappings = map;
  c.linux.seccomp = seccomp;
  // No cgroupsPath: each runtime then names the container's cgroup after its id
  // (tsbox-bench-<pid>-...), which is how the cleanup finds any it left.
  c.linux.resources = { ...c.linux.resources, pids: { limit: PIDS_LIMIT } };
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
  return dir;
}

export async function prepare(dir) {
  dir = resolve(dir);
  mkdirSync(dir, { recursive: true });
  const { build, probePath } = await loadRootfsBuilder(dir);
  // buildTestRootfs makes its directory under os.tmpdir(): point that at DIR.
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  let rootfs;
  try {
    rootfs = (await build({ probePath })).dir;
  } finally {
    if (tmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmp;
  }

  const seccompJson = join(dir, 'seccomp.json');
  const seccompBpf = join(dir, 'seccomp.bpf');
  const said = execFileSync('/usr/bin/python3', [join(REPO, 'bench/lib/make-seccomp.py'), seccompJson, seccompBpf], { encoding: 'utf8' });
  const seccomp = JSON.parse(readFileSync(seccompJson, 'utf8'));

  // The rootfs as a one-layer image in a store of the bench's own (tsbox import).
  const store = join(dir, 'store');
  const image = 'localhost/bench-rootfs:1';
  execFileSync('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.']);
  execFileSync(process.execPath, [join(REPO, 'bin/tsbox.js'), 'import', '-q', join(dir, 'rootfs.tar'), image], { env: { ...process.env, TSBOX_STORAGE: store }, stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(join(dir, 'rootfs.tar'));

  const manifest = {
    dir,
    rootfs,
    store,
    image,
    bundles: {
      true: ociBundle(join(dir, 'oci-true'), { rootfs, args: ['/bin/true'], seccomp }),
      sleep: ociBundle(join(dir, 'oci-sleep'), { rootfs, args: ['/bin/sleep', '1'], seccomp }),
    },
    seccompJson,
    seccompBpf,
    seccompSummary: said.trim(),
    runcRoot: join(dir, 'runc'),
    crunRoot: join(dir, 'crun'),
    empty: join(dir, 'empty'),
    // bench/setup.sh installs it; a peer only where it is.
    srt: existsSync(join(REPO, 'bench/.peers/node_modules/.bin/srt')) ? join(REPO, 'bench/.peers/node_modules/.bin/srt') : null,
  };
  mkdirSync(manifest.runcRoot, { recursive: true, mode: 0o700 });
  mkdirSync(manifest.crunRoot, { recursive: true, mode: 0o700 });
  writeFileSync(manifest.empty, '');
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.length !== 3) {
    console.error('usage: node bench/lib/prepare.mjs DIR');
    process.exit(2);
  }
  const m = await prepare(process.argv[2]);
  console.log(`bench: rootfs ${m.rootfs}; OCI bundles ${m.bundles.true}, ${m.bundles.sleep}; ${m.seccompSummary}`);
}

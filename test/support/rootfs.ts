// Builds the busybox-static test rootfs the integration suites run containers in.
//
// Layout (everything readable by others: dirs 0755, files 0644/0755):
//   bin/busybox                 copied from Debian's busybox-static (/bin/busybox)
//   bin/<applet> -> busybox     one relative symlink per `busybox --list` entry
//   proc sys dev tmp(1777) etc root home home/tester run var usr/bin
//   etc/passwd, etc/group       root, tester (1000:1000), nobody/nogroup (65534)
//   usr/bin/tsbox-probe         the static probe (crates/tsbox-probe)

import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const HOST_BUSYBOX = '/bin/busybox';

/** The repository root: this file lives in <repo>/test/support/. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const STATIC_BUILD_COMMAND =
  'scripts/build-static.sh (RUSTFLAGS="-C target-feature=+crt-static" cargo build -p tsbox-probe ' +
  '--release --target <arch>-unknown-linux-gnu --target-dir target/static)';

/** Default location of the statically linked probe built by scripts/build-static.sh. */
export function probePath(): string {
  return path.join(
    REPO_ROOT,
    'target',
    'static',
    `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-unknown-linux-gnu`,
    'release',
    'tsbox-probe',
  );
}

export interface TestRootfs {
  /** Absolute path of the rootfs directory. */
  dir: string;
  /** Removes the rootfs directory recursively. */
  cleanup(): Promise<void>;
}

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'tester:x:1000:1000:tester:/home/tester:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '',
].join('\n');

const GROUP = ['root:x:0:', 'tester:x:1000:tester', 'nogroup:x:65534:', ''].join('\n');

const DIRS = [
  'bin',
  'proc',
  'sys',
  'dev',
  'tmp',
  'etc',
  'root',
  'home',
  'home/tester',
  'run',
  'var',
  'usr',
  'usr/bin',
];

export async function buildTestRootfs(opts?: { probePath?: string }): Promise<TestRootfs> {
  const probe = opts?.probePath ?? probePath();

  // Check the inputs before creating anything.
  await checkStaticExecutable(
    HOST_BUSYBOX,
    `${HOST_BUSYBOX} is missing; install Debian's static busybox: apt-get install busybox-static`,
    `${HOST_BUSYBOX} is dynamically linked; install Debian's static busybox instead: apt-get install busybox-static`,
  );
  await checkStaticExecutable(
    probe,
    `tsbox-probe not found at ${probe}; build it with ${STATIC_BUILD_COMMAND}`,
    `tsbox-probe at ${probe} is dynamically linked; build it statically with ${STATIC_BUILD_COMMAND}`,
  );

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsbox-test-rootfs-'));
  const cleanup = async (): Promise<void> => {
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await fs.chmod(dir, 0o755);
    await populate(dir, probe);
  } catch (err) {
    await cleanup().catch(() => {});
    throw err;
  }
  return { dir, cleanup };
}

async function populate(dir: string, probe: string): Promise<void> {
  // mkdir's mode is filtered by the umask, so chmod explicitly.
  for (const d of DIRS) {
    const p = path.join(dir, d);
    await fs.mkdir(p, { recursive: true });
    await fs.chmod(p, 0o755);
  }
  await fs.chmod(path.join(dir, 'tmp'), 0o1777);
  if (process.getuid?.() === 0) {
    await fs.chown(path.join(dir, 'home/tester'), 1000, 1000);
  }

  const busybox = path.join(dir, 'bin/busybox');
  await fs.copyFile(HOST_BUSYBOX, busybox);
  await fs.chmod(busybox, 0o755);

  const { stdout } = await execFileAsync(HOST_BUSYBOX, ['--list'], { encoding: 'utf8' });
  const applets = stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'busybox' && !s.includes('/'));
  if (applets.length === 0) {
    throw new Error(`${HOST_BUSYBOX} --list printed no applets`);
  }
  await Promise.all(applets.map((a) => fs.symlink('busybox', path.join(dir, 'bin', a))));

  await writeFileMode(path.join(dir, 'etc/passwd'), PASSWD, 0o644);
  await writeFileMode(path.join(dir, 'etc/group'), GROUP, 0o644);

  const probeDest = path.join(dir, 'usr/bin/tsbox-probe');
  await fs.copyFile(probe, probeDest);
  await fs.chmod(probeDest, 0o755);
}

async function writeFileMode(file: string, data: string, mode: number): Promise<void> {
  await fs.writeFile(file, data, { mode });
  await fs.chmod(file, mode);
}

/**
 * Throws `missingMsg` if `file` cannot be read, `dynamicMsg` if it is an ELF
 * executable with a PT_INTERP program header (i.e. it needs a dynamic loader,
 * which the test rootfs does not have). Static-pie executables have no PT_INTERP.
 */
async function checkStaticExecutable(
  file: string,
  missingMsg: string,
  dynamicMsg: string,
): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, fsConstants.O_RDONLY);
  } catch (err) {
    throw new Error(missingMsg, { cause: err });
  }
  try {
    if (await hasInterpreter(fh, file)) throw new Error(dynamicMsg);
  } finally {
    await fh.close();
  }
}

const PT_INTERP = 3;

async function hasInterpreter(fh: fs.FileHandle, file: string): Promise<boolean> {
  const readAt = async (pos: number, len: number): Promise<Buffer> => {
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, pos);
    if (bytesRead !== len) throw new Error(`${file}: truncated ELF file`);
    return buf;
  };
  const ident = await readAt(0, 64).catch(() => {
    throw new Error(`${file}: not an ELF executable`);
  });
  if (ident.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF executable`);
  const is64 = ident[4] === 2;
  const le = ident[5] === 1;
  const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number): number =>
    Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const phoff = is64 ? u64(ident, 0x20) : u32(ident, 0x1c);
  const phentsize = u16(ident, is64 ? 0x36 : 0x2a);
  const phnum = u16(ident, is64 ? 0x38 : 0x2c);
  if (phnum === 0) return false;
  const table = await readAt(phoff, phentsize * phnum);
  for (let i = 0; i < phnum; i++) {
    if (u32(table, i * phentsize) === PT_INTERP) return true;
  }
  return false;
}

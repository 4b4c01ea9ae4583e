/**
 * The OCI runtime's commands, with runc's command line (README, "As an OCI
 * runtime"): create, start, state, delete, list, spec, features; `kill`
 * takes runc's `kill ID SIGNAL` too (ts/cli/kill.ts). Global flags (--root,
 * --log, ...) come before the command and are read by globalFlags().
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { defineCommand } from 'citty';

import { ALL_CAPABILITIES } from '../config/capabilities.js';
import { DEFAULT_CAPABILITIES, DEFAULT_PATH } from '../config/defaults.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../config/mounts.js';
import { fromSystemError, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { ociCreate, ociDelete, ociEvents, ociList, ociPause, ociStart, ociState, ociStats, ociUpdate, findOci, UPDATE_LIMITS } from '../oci/runtime.js';
import { supportedMountOptions } from '../oci/plan.js';
import { HOOK_NAMES, NAMESPACE_TYPES, OCI_VERSION_MAX, OCI_VERSION_MIN } from '../oci/spec.js';
import { kebab } from '../suggest.js';
import { chooseStateRoot } from '../state-root.js';
import { attachTerminal, parse, preservedFds } from './common.js';
import { version } from './version.js';

/** What the global flags asked for, for the commands and the error path. */
export const globals = { log: undefined as string | undefined, logFormat: 'text' as 'text' | 'json', debug: false, rootless: 'auto' as 'auto' | 'true' | 'false', systemdCgroup: false };

const GLOBAL_VALUE_FLAGS = new Set(['--root', '--log', '--log-format', '--rootless', '--criu']);
const GLOBAL_BOOL_FLAGS = new Set(['--debug', '--systemd-cgroup']);

/**
 * Reads runc's global flags from the front of `argv` and returns the rest
 * (the command and its arguments); callers such as podman and containerd
 * put them there.
 */
export function globalFlags(argv: readonly string[]): string[] {
  let i = 0;
  for (; i < argv.length; i++) {
    const tok = argv[i]!;
    const eq = tok.indexOf('=');
    const name = eq > 0 ? tok.slice(0, eq) : tok;
    if (GLOBAL_BOOL_FLAGS.has(name)) {
      if (eq > 0 && !['true', 'false'].includes(tok.slice(eq + 1))) throw new TsboxError({ step: 'config', errno: 22, path: name, detail: `takes true or false, not "${tok.slice(eq + 1)}"`, hint: null });
      const on = eq < 0 || tok.slice(eq + 1) === 'true';
      if (name === '--debug') globals.debug = on;
      else globals.systemdCgroup = on;
      continue;
    }
    if (!GLOBAL_VALUE_FLAGS.has(name)) break;
    const value = eq > 0 ? tok.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new TsboxError({ step: 'config', errno: 22, path: name, detail: 'needs a value', hint: null });
    if (name === '--root') {
      const dir = resolve(value);
      if (dir === '/') throw new TsboxError({ step: 'config', errno: 22, path: '--root', detail: 'cannot be /', hint: 'give a directory of its own, such as /run/tsbox' });
      chooseStateRoot(dir);
    } else if (name === '--log') globals.log = resolve(value);
    else if (name === '--log-format') {
      if (value !== 'text' && value !== 'json') throw new TsboxError({ step: 'config', errno: 22, path: '--log-format', detail: `invalid log-format "${value}"`, hint: 'text or json' });
      globals.logFormat = value;
    } else if (name === '--rootless') {
      if (!['auto', 'true', 'false'].includes(value)) throw new TsboxError({ step: 'config', errno: 22, path: '--rootless', detail: `takes auto, true or false, not "${value}"`, hint: null });
      globals.rootless = value as typeof globals.rootless;
    } else if (name === '--criu') {
      // runc's obsolete path to criu: tsbox does not checkpoint, and nothing reads it.
    }
  }
  return argv.slice(i);
}

/** A line in the --log file, as runc writes them (podman and containerd read the JSON form). */
export function logLine(level: 'error' | 'warning' | 'debug', msg: string): void {
  if (!globals.log) return;
  const time = new Date().toISOString();
  const line = globals.logFormat === 'json' ? JSON.stringify({ level, msg, time }) : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    appendFileSync(globals.log, `${line}\n`, { mode: 0o644 });
  } catch {
    // The error still reaches stderr.
  }
}

const warn = (line: string) => {
  process.stderr.write(`tsbox: ${line}\n`);
  logLine('warning', line);
};

const createArgs = {
  bundle: { type: 'string', alias: 'b', valueHint: 'DIR', description: 'The bundle: a directory holding config.json. Default: the current directory' },
  consoleSocket: { type: 'string', valueHint: 'PATH', description: "A Unix socket to send the terminal's master to (process.terminal)" },
  pidFile: { type: 'string', valueHint: 'FILE', description: "Write the container's pid (in the host's pid namespace) to FILE, atomically" },
  noPivot: { type: 'boolean', description: 'Accepted for runc\'s callers; tsbox always uses pivot_root' },
  noNewKeyring: { type: 'boolean', description: 'Accepted for runc\'s callers; tsbox does not make a session keyring' },
  preserveFds: { type: 'string', valueHint: 'N', description: 'Pass N more file descriptors (3 to 3+N-1) into the container' },
} as const;

export const create = defineCommand({
  meta: { name: 'tsbox create', description: "Create a container from an OCI bundle: everything but its process, which waits for `tsbox start`. Its stdio is this command's" },
  args: createArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, createArgs, cmd, 'create', { min: 1, max: 1, usage: "the container's id" });
    if (!split) return;
    const v = split.values;
    await ociCreate({
      bundle: (v.get('bundle') as string | undefined) ?? '.',
      id: split.command[0]!,
      pidFile: v.get('pidFile') as string | undefined,
      consoleSocket: v.get('consoleSocket') as string | undefined,
      preserveFds: preservedFds(v),
      trace: globals.debug,
      rootless: globals.rootless,
      systemdCgroup: globals.systemdCgroup,
    });
    // The container is its monitor's now: nothing here waits for it.
    process.exit(0);
  },
});

const runArgs = {
  ...createArgs,
  detach: { type: 'boolean', alias: 'd', description: 'Leave the container running and return (as create and start)' },
  keep: { type: 'boolean', description: 'Keep the stopped container (delete it later), rather than deleting it at its end' },
  noSubreaper: { type: 'boolean', description: "Accepted for runc's callers; tsbox's monitor reaps the container" },
} as const;

/**
 * runc's `run ID`: create and start; in the foreground the terminal (with
 * process.terminal) is this one's, the exit status the container's, and the
 * container is deleted at its end unless --keep.
 */
export async function ociRun(rawArgs: readonly string[]): Promise<void> {
  const split = await parse(rawArgs, runArgs, run, 'run', { min: 1, max: 1, usage: "the container's id" });
  if (!split) return;
  const v = split.values;
  const id = split.command[0]!;
  const detach = v.get('detach') === true;
  const { container } = await ociCreate({
    bundle: (v.get('bundle') as string | undefined) ?? '.',
    id,
    pidFile: v.get('pidFile') as string | undefined,
    consoleSocket: v.get('consoleSocket') as string | undefined,
    preserveFds: preservedFds(v),
    trace: globals.debug,
    rootless: globals.rootless,
    systemdCgroup: globals.systemdCgroup,
    attach: !detach,
  });
  if (detach) {
    await ociStart(id, warn);
    process.exit(0);
  }
  const restore = container.terminalFd !== null ? attachTerminal(container, true) : () => {};
  try {
    await ociStart(id, warn);
    process.exitCode = (await container.wait()).exitCode;
  } finally {
    restore();
    // Deleted at its end, or when it could not start, unless kept.
    if (v.get('keep') !== true) await ociDelete(id, true, warn);
  }
}

/** Only for run's help: the command that parse() shows it with. */
const run = defineCommand({ meta: { name: 'tsbox run', description: "runc's run: create and start a bundle's container; in the foreground, wait for it and delete it" }, args: runArgs });

export const start = defineCommand({
  meta: { name: 'tsbox start', description: 'Start the process of a container made by `tsbox create`, then run its poststart hooks' },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'start', { min: 1, max: 1, usage: "the container's id" });
    if (!split) return;
    await ociStart(split.command[0], warn);
  },
});

export const state = defineCommand({
  meta: { name: 'tsbox state', description: "Print a container's state as the OCI runtime-spec defines it (JSON)" },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'state', { min: 1, max: 1, usage: "the container's id" });
    if (!split) return;
    process.stdout.write(`${JSON.stringify(ociState(findOci(split.command[0], 'state').state), null, 2)}\n`);
  },
});

export const pause = defineCommand({
  meta: { name: 'tsbox pause', description: "Pause a running container: every process of its cgroup frozen" },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'pause', { min: 1, max: 1, usage: "the container's id" });
    if (split) ociPause(split.command[0], true);
  },
});

export const resume = defineCommand({
  meta: { name: 'tsbox resume', description: 'Resume a paused container' },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'resume', { min: 1, max: 1, usage: "the container's id" });
    if (split) ociPause(split.command[0], false);
  },
});

const updateArgs = {
  resources: { type: 'string', alias: 'r', valueHint: 'FILE', description: 'An OCI linux.resources object (JSON); - reads stdin' },
  memory: { type: 'string', alias: 'm', valueHint: 'BYTES', description: 'Memory limit (64m, or bytes)' },
  memoryReservation: { type: 'string', valueHint: 'BYTES', description: 'Memory soft limit' },
  memorySwap: { type: 'string', valueHint: 'BYTES', description: 'Memory plus swap; -1 for unlimited swap' },
  cpuShares: { type: 'string', valueHint: 'N', description: 'CPU shares (relative weight)' },
  cpuQuota: { type: 'string', valueHint: 'µs', description: 'CPU time per period' },
  cpuPeriod: { type: 'string', valueHint: 'µs', description: 'CPU period' },
  cpusetCpus: { type: 'string', valueHint: 'LIST', description: 'CPUs to run on (0-3,5)' },
  cpusetMems: { type: 'string', valueHint: 'LIST', description: 'Memory nodes to allocate from' },
  pidsLimit: { type: 'string', valueHint: 'N', description: 'Most processes at once; -1 for none' },
  blkioWeight: { type: 'string', valueHint: 'N', description: 'Block I/O weight, 10 to 1000' },
  kernelMemory: { type: 'string', valueHint: 'BYTES', description: 'Refused: the kernel dropped kernel memory limits' },
  cpuRtPeriod: { type: 'string', valueHint: 'µs', description: 'Refused: not supported by tsbox yet' },
  cpuRtRuntime: { type: 'string', valueHint: 'µs', description: 'Refused: not supported by tsbox yet' },
  l3CacheSchema: { type: 'string', valueHint: 'SCHEMA', description: 'Refused: tsbox has no Intel RDT support' },
  memBwSchema: { type: 'string', valueHint: 'SCHEMA', description: 'Refused: tsbox has no Intel RDT support' },
} as const;

export const update = defineCommand({
  meta: { name: 'tsbox update', description: "Change a container's resource limits while it runs: only those given change" },
  args: updateArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, updateArgs, cmd, 'update', { min: 1, max: 1, usage: "the container's id" });
    if (!split) return;
    const v = split.values;
    for (const flag of ['kernelMemory', 'cpuRtPeriod', 'cpuRtRuntime', 'l3CacheSchema', 'memBwSchema'] as const) {
      if (v.has(flag)) throw new TsboxError({ step: 'config', errno: 95, path: `--${kebab(flag)}`, detail: updateArgs[flag].description.replace(/^Refused: /, ''), hint: null });
    }
    const flags: Record<string, string> = {};
    for (const key of UPDATE_LIMITS) if (v.has(key)) flags[key] = v.get(key) as string;
    ociUpdate(split.command[0], v.get('resources') as string | undefined, flags);
  },
});

const eventsArgs = {
  stats: { type: 'boolean', description: "Print the container's usage once, and return" },
  interval: { type: 'string', valueHint: 'DURATION', description: 'How often to print it (default 5s)' },
} as const;

export const events = defineCommand({
  meta: { name: 'tsbox events', description: "Print a container's usage (cpu, memory, pids) and OOM kills as JSON lines, until it stops" },
  args: eventsArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, eventsArgs, cmd, 'events', { min: 1, max: 1, usage: "the container's id" });
    if (!split) return;
    const id = split.command[0];
    if (split.values.get('stats') === true) {
      const { oomKills: _ooms, ...event } = ociStats(id);
      process.stdout.write(`${JSON.stringify(event)}\n`);
      return;
    }
    const { parseDuration } = await import('./args.js');
    const interval = split.values.has('interval') ? parseDuration(split.values.get('interval') as string, '--interval') : 5000;
    if (interval <= 0) throw new TsboxError({ step: 'config', errno: 22, path: '--interval', detail: 'must be more than 0', hint: null });
    await ociEvents(id, interval, (e) => process.stdout.write(`${JSON.stringify(e)}\n`));
  },
});

const deleteArgs = { force: { type: 'boolean', alias: 'f', description: 'Kill a created or running container first' } } as const;

export const del = defineCommand({
  meta: { name: 'tsbox delete', description: 'Delete a stopped container (any, with --force) and run its poststop hooks' },
  args: deleteArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, deleteArgs, cmd, 'delete', { min: 1, max: Infinity, usage: "the containers' ids" });
    if (!split) return;
    let first: TsboxError | undefined;
    for (const id of split.command) {
      try {
        await ociDelete(id, split.values.get('force') === true, warn);
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        // --force on one that is gone already is done (runc's rule).
        if (split.values.get('force') === true && err.errno === 2) continue;
        process.stderr.write(`tsbox: ${err.toLine()}\n`);
        logLine('error', err.toLine());
        first ??= err;
      }
    }
    if (first) process.exitCode = 1;
  },
});

const listArgs = {
  format: { type: 'string', alias: 'f', valueHint: 'table|json', description: 'table (default) or json' },
  quiet: { type: 'boolean', alias: 'q', description: 'Print the ids only' },
} as const;

export const list = defineCommand({
  meta: { name: 'tsbox list', description: 'List the containers as runc does: id, pid, status, bundle, created' },
  args: listArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, listArgs, cmd, 'list', { min: 0, max: 0, usage: 'no arguments' });
    if (!split) return;
    const format = (split.values.get('format') as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json') throw new TsboxError({ step: 'config', errno: 22, path: '--format', detail: `"${format}" is not table or json`, hint: null });
    const all = ociList();
    if (split.values.get('quiet') === true) {
      for (const s of all) console.log(s.id);
    } else if (format === 'json') {
      process.stdout.write(`${JSON.stringify(all)}\n`);
    } else {
      const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...all.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, s.owner || (process.getuid?.() === 0 ? 'root' : String(process.getuid?.()))])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join(''));
    }
  },
});

const specArgs = {
  bundle: { type: 'string', alias: 'b', valueHint: 'DIR', description: 'Write DIR/config.json. Default: the current directory' },
  rootless: { type: 'boolean', description: 'For an ordinary user: your own uid and gid as root, no resource limits' },
} as const;

export const spec = defineCommand({
  meta: { name: 'tsbox spec', description: "Write a bundle's config with tsbox's defaults: config.json, for a root filesystem in rootfs/ that runs sh" },
  args: specArgs,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, specArgs, cmd, 'spec', { min: 0, max: 0, usage: 'no arguments' });
    if (!split) return;
    const file = join(resolve((split.values.get('bundle') as string | undefined) ?? '.'), 'config.json');
    // Made here or not at all (O_CREAT|O_EXCL): a config.json that is a
    // symlink, dangling too, is refused as an existing file, where a check
    // before the write would have let root create the file it names.
    try {
      writeFileSync(file, `${JSON.stringify(defaultSpec(split.values.get('rootless') === true), null, '\t')}\n`, { mode: 0o666, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TsboxError({ step: 'config', errno: 17, path: file, detail: 'config.json exists', hint: 'remove it first' }, { cause: err });
      throw fromSystemError('config', err, 'write config.json', 'give --bundle a directory you may write');
    }
  },
});

/** The config.json `tsbox spec` writes: tsbox's own defaults, as OCI fields. */
export function defaultSpec(rootless: boolean): Record<string, unknown> {
  const caps = [...DEFAULT_CAPABILITIES];
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return {
    ociVersion: OCI_VERSION_MAX,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: [`PATH=${DEFAULT_PATH}`, 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }, { type: 'RLIMIT_CORE', hard: 0, soft: 0 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'tsbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      ...(rootless
        ? { uidMappings: [{ containerID: 0, hostID: uid, size: 1 }], gidMappings: [{ containerID: 0, hostID: gid, size: 1 }] }
        : { resources: { devices: [{ allow: false, access: 'rwm' }] } }),
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup', 'user'].map((type) => ({ type })),
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      seccomp: JSON.parse(loadNative().binding.seccompDefaultProfile()) as unknown,
    },
  };
}

export const features = defineCommand({
  meta: { name: 'tsbox features', description: 'Print what this runtime supports, as the OCI runtime-spec\'s features document (JSON)' },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'features', { min: 0, max: 0, usage: 'no arguments' });
    if (!split) return;
    process.stdout.write(`${JSON.stringify(featuresDoc(), null, 4)}\n`);
  },
});

/** The runtime-spec features document: only what ts/oci carries out. */
export function featuresDoc(): Record<string, unknown> {
  return {
    ociVersionMin: OCI_VERSION_MIN,
    ociVersionMax: OCI_VERSION_MAX,
    hooks: [...HOOK_NAMES],
    mountOptions: supportedMountOptions(),
    linux: {
      namespaces: [...NAMESPACE_TYPES],
      capabilities: [...ALL_CAPABILITIES],
      cgroup: { v1: true, v2: true, systemd: true, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP'],
        operators: ['SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE'],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      // idmap and ridmap on binds, by the container's own user namespace (as root).
      mountExtensions: { idmap: { enabled: true } },
    },
    annotations: { 'org.tsbox.version': version },
  };
}

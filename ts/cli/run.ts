/** `tsbox run`: start a container, pass stdio through, exit with its status. */
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, rmSync, writeFileSync } from 'node:fs';

import { defineCommand } from 'citty';

import { loadConfig } from '../config/file.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../config/mounts.js';
import { checkImageRunInput, PULL_POLICIES, type RunOptions } from '../config/schema.js';
import { fromSystemError, TsboxError } from '../errors.js';
import { loadNative } from '../native.js';
import { spawn, type Container, type ExitResult } from '../index.js';
import { asFlagError, containerArgs, envFromFlags, parseDuration, REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT, splitArgs } from './args.js';
import { attachTerminal, checkInteractiveTerminal, terminalSize } from './common.js';
import { showCommandHelp } from './help.js';

/** Signals that, sent to tsbox, are passed on to the container. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];


/**
 * Without `-t` the container gets this process's own stdio, a terminal
 * included: whatever it does to the terminal's settings (raw mode, no echo,
 * exclusive mode) is undone when it ends. Returns the undo.
 */
function guardTerminal(): () => void {
  const { binding } = loadNative();
  const saved = [0, 1, 2].flatMap((fd) => {
    const t = binding.saveTerminal(fd);
    return t ? [{ fd, t }] : [];
  });
  return () => {
    for (const { fd, t } of saved) binding.restoreTerminal(fd, t);
  };
}

/**
 * Where the outcome report goes: stderr (`-`), or a file opened now, before
 * anything starts, so an unwritable path fails first and in one line. A file
 * this made is removed again when the container does not start; one that
 * was there is left as it was until the report replaces it.
 */
function openReport(to: string): { write(result: ExitResult): void; discard(): void } {
  if (to === '-') return { write: (result) => process.stderr.write(`${JSON.stringify(result, null, 2)}\n`), discard: () => {} };
  const existed = existsSync(to);
  let fd: number;
  try {
    fd = openSync(to, constants.O_WRONLY | constants.O_CREAT, 0o644);
  } catch (err) {
    throw fromSystemError('report', err, `open the report file ${to}`, 'give --report a path you may write, or - for stderr');
  }
  return {
    // A failure to write it is one line; the command's status stays.
    write(result) {
      try {
        // A file's earlier contents go; a device or a pipe (/dev/stdout) has none to cut.
        if (fstatSync(fd).isFile()) ftruncateSync(fd, 0);
        writeFileSync(fd, `${JSON.stringify(result, null, 2)}\n`);
      } catch (err) {
        const errno = Math.abs((err as NodeJS.ErrnoException).errno ?? 0);
        process.stderr.write(`tsbox: ${new TsboxError({ step: 'report', errno, path: to, detail: `write the report to ${to}`, hint: null }).toLine()}\n`);
      } finally {
        closeSync(fd);
      }
    },
    discard() {
      closeSync(fd);
      if (!existed) rmSync(to, { force: true });
    },
  };
}

const NUMBER_FLAGS = { 'cpu-shares': 'cpuShares', 'cpu-quota': 'cpuQuota', 'cpu-period': 'cpuPeriod', 'pids-limit': 'pidsLimit', 'blkio-weight': 'blkioWeight', cpus: 'cpus', 'memory-swappiness': 'memorySwappiness' } as const;
const SIZE_FLAGS = { memory: 'memory', 'memory-swap': 'memorySwap', 'memory-reservation': 'memoryReservation', 'kernel-memory': 'kernelMemory' } as const;
const DEVICE_FLAGS = { 'device-read-bps': 'deviceReadBps', 'device-write-bps': 'deviceWriteBps', 'device-read-iops': 'deviceReadIops', 'device-write-iops': 'deviceWriteIops' } as const;

/** The resource flags, as Docker spells them, into the options (the schema checks the values). */
function applyLimitFlags(options: RunOptions, v: Map<string, string | boolean | string[]>): void {
  const o = options as Record<string, unknown>;
  for (const [flag, key] of Object.entries(NUMBER_FLAGS)) {
    if (!v.has(flag)) continue;
    const raw = v.get(flag) as string;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new TsboxError({ step: 'config', errno: 0, path: `--${flag}`, detail: `"${raw}" is not a number`, hint: null });
    o[key] = n;
  }
  for (const [flag, key] of Object.entries(SIZE_FLAGS)) if (v.has(flag)) o[key] = v.get(flag);
  for (const [flag, key] of Object.entries(DEVICE_FLAGS)) {
    if (!v.has(flag)) continue;
    o[key] = (v.get(flag) as string[]).map((spec) => {
      const i = spec.lastIndexOf(':');
      if (i <= 0) throw new TsboxError({ step: 'config', errno: 0, path: `--${flag} ${spec}`, detail: 'is not DEVICE:RATE', hint: 'for example /dev/sda:1mb' });
      const rate = spec.slice(i + 1);
      return { path: spec.slice(0, i), rate: flag.endsWith('iops') ? Number(rate) : rate };
    });
  }
  if (v.has('blkio-weight-device')) {
    options.blkioWeightDevice = (v.get('blkio-weight-device') as string[]).map((spec) => {
      const i = spec.lastIndexOf(':');
      const weight = Number(spec.slice(i + 1));
      if (i <= 0 || spec.slice(i + 1).trim() === '' || !Number.isFinite(weight)) throw new TsboxError({ step: 'config', errno: 0, path: `--blkio-weight-device ${spec}`, detail: 'is not DEVICE:WEIGHT', hint: 'for example /dev/sda:200' });
      return { path: spec.slice(0, i), weight };
    });
  }
  if (v.get('oom-kill-disable') === true) options.oomKillDisable = true;
  if (v.has('cgroup-conf')) {
    const unified: Record<string, string> = {};
    for (const spec of v.get('cgroup-conf') as string[]) {
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new TsboxError({ step: 'config', errno: 0, path: `--cgroup-conf ${spec}`, detail: 'is not KEY=VALUE', hint: 'for example memory.high=64m' });
      unified[spec.slice(0, eq)] = spec.slice(eq + 1);
    }
    options.unified = unified;
  }
  if (v.has('cpuset-cpus')) options.cpusetCpus = v.get('cpuset-cpus') as string;
  if (v.has('cpuset-mems')) options.cpusetMems = v.get('cpuset-mems') as string;
  if (v.has('cgroup-parent')) options.cgroupParent = v.get('cgroup-parent') as string;
  if (v.has('ulimit')) {
    const ulimits: Record<string, string> = {};
    for (const spec of v.get('ulimit') as string[]) {
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new TsboxError({ step: 'config', errno: 0, path: `--ulimit ${spec}`, detail: 'is not NAME=SOFT[:HARD]', hint: 'for example nofile=1024:4096' });
      ulimits[spec.slice(0, eq)] = spec.slice(eq + 1);
    }
    options.ulimits = ulimits;
  }
}

/** Docker's --security-opt KEY[=VALUE] forms that tsbox honours. */
export function applySecurityOpt(options: RunOptions, opt: string): void {
  const [key, value] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : opt.includes(':') ? [opt.slice(0, opt.indexOf(':')), opt.slice(opt.indexOf(':') + 1)] : [opt, undefined];
  if (key === 'no-new-privileges') {
    if (value === undefined || value === 'true') options.noNewPrivileges = true;
    else if (value === 'false') options.noNewPrivileges = false;
    else throw new TsboxError({ step: 'config', errno: 0, path: `--security-opt ${opt}`, detail: 'no-new-privileges takes true or false', hint: null });
    return;
  }
  if (key === 'seccomp') {
    if (!value) throw new TsboxError({ step: 'config', errno: 0, path: `--security-opt ${opt}`, detail: 'seccomp needs a value', hint: 'seccomp=default, seccomp=unconfined or seccomp=PATH (an OCI profile)' });
    options.seccomp = value;
    return;
  }
  throw new TsboxError({ step: 'config', errno: 0, path: `--security-opt ${opt}`, detail: `unknown security option "${key}"`, hint: 'supported: no-new-privileges[=true|false], seccomp=default|unconfined|PATH' });
}

/** Flags only runc's run has. */
const OCI_RUN_ONLY = /^--(bundle|pid-file|console-socket|keep|no-pivot|no-new-keyring|no-subreaper|preserve-fds)(=|$)|^-b$/;

/**
 * runc's form of run: one of its own flags (--bundle, ...) before the id.
 * Never guessed from a config.json in the current directory: `tsbox run sh`
 * in an unpacked tarball must not run the tarball's hooks as root.
 */
function ociRunForm(rawArgs: readonly string[]): boolean {
  const positional = rawArgs.findIndex((a) => !a.startsWith('-') || a === '-');
  const flags = positional < 0 ? rawArgs : rawArgs.slice(0, positional);
  return flags.some((a) => OCI_RUN_ONLY.test(a));
}

/**
 * spawn(), with an image that is not (completely) in the store pulled by
 * `pull` first, unless the pull policy is never: the launch's own look-up
 * is the only one when the image is there.
 */
async function spawnPulling(command: string[], options: RunOptions, insecure: string[], pull: () => Promise<void>): Promise<Container> {
  if (options.image === undefined || options.pull === 'never') return spawn(command, options);
  try {
    return await spawn(command, { ...options, pull: 'never' });
  } catch (err) {
    // ensureImage's two errors for an image the store lacks (no record, or a layer missing).
    if (!(err instanceof TsboxError && err.code === 'TSBOX_IMAGE_ENOENT' && err.path === options.image)) throw err;
  }
  await pull();
  // (Removed again meanwhile, by an rmi or a prune: spawn pulls it, from the same registries.)
  return spawn(command, { ...options, pulling: { insecure } });
}

/** The flags of a container of an image (`tsbox run IMAGE`). */
const imageArgs = {
  pull: { type: 'string', valueHint: 'missing|always|never', description: 'When to pull the image: when it is not in the store (default), always, or never' },
  entrypoint: { type: 'string', valueHint: 'PROGRAM', description: "Replace the image's Entrypoint (its Cmd goes too unless a command is given)" },
  quiet: { type: 'boolean', alias: 'q', description: 'No progress while pulling the image' },
  'insecure-registry': { type: 'string', valueHint: 'HOST[:PORT]', description: 'Allow plain http or an unverified certificate for this registry (repeatable)' },
} as const;
const runArgs = { ...containerArgs, ...imageArgs };

/**
 * `tsbox run [OPTIONS] IMAGE [COMMAND...]`, Docker's form, unless the root
 * is a directory (--rootfs, or a config file's rootfs) or the command
 * follows `--` (`tsbox run -- sh`: the host's root, read-only).
 */
function imagePositional(rawArgs: readonly string[], commandLength: number, hasRootfs: boolean): boolean {
  if (hasRootfs || commandLength === 0) return false;
  const dashdash = rawArgs.indexOf('--');
  return dashdash < 0 || rawArgs.length - dashdash - 1 < commandLength;
}

const run = defineCommand({
  meta: { name: 'tsbox run', description: 'Run a command in a new container: user, pid, mount, net, ipc, uts and cgroup namespaces. `tsbox run IMAGE [COMMAND...]` runs an image (pulled when missing); `tsbox run --rootfs DIR COMMAND` a directory; `tsbox run -- COMMAND` the host\'s root, read-only' },
  args: {
    ...runArgs,
    command: { type: 'positional', required: false, valueHint: 'IMAGE [COMMAND [ARGS...]]', description: 'The image and the command to run, after the options (with --rootfs or after --: only the command)' },
  },
  async run({ rawArgs, cmd }) {
    // runc's `run [--bundle DIR] [--detach] ... ID`: an OCI bundle's container.
    if (ociRunForm(rawArgs)) return (await import('./oci.js')).ociRun(rawArgs);
    const split = splitArgs(rawArgs, runArgs, 'run', REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT);
    if (split.help) {
      await showCommandHelp(cmd, 'run');
      return;
    }
    const v = split.values;
    const file = v.has('config') ? loadConfig(v.get('config') as string) : undefined;
    const options: RunOptions = { ...file?.options, stdio: 'inherit' };
    if (v.has('init')) options.init = v.get('init') !== false;
    const detach = v.get('detach') === true;
    if (detach) {
      if (v.get('rm') === true) throw new TsboxError({ step: 'config', errno: 0, path: '--rm', detail: 'cannot be combined with --detach', hint: 'a detached container stays until `tsbox rm`' });
      options.detach = true;
      options.stdio = 'ignore';
    }
    if (v.has('name')) options.name = v.get('name') as string;
    if (v.has('trace')) options.trace = v.get('trace') === true;
    if (v.has('rootfs')) {
      // podman's `--rootfs DIR:idmap`.
      const dir = v.get('rootfs') as string;
      if (dir.endsWith(':idmap')) {
        options.rootfs = dir.slice(0, -':idmap'.length);
        options.rootfsIdmap = true;
      } else {
        options.rootfs = dir;
      }
    }
    if (v.has('hostname')) options.hostname = v.get('hostname') as string;
    if (v.has('stop-signal')) options.stopSignal = v.get('stop-signal') as string;
    if (v.has('network')) options.network = v.get('network') as string;
    if (v.has('publish')) options.publish = v.get('publish') as string[];
    if (v.has('expose')) options.expose = v.get('expose') as string[];
    if (v.has('publish-all')) options.publishAll = v.get('publish-all') === true;
    if (v.has('allow-host') || v.has('allow-net')) {
      options.allow = [...((v.get('allow-host') as string[] | undefined) ?? []), ...((v.get('allow-net') as string[] | undefined) ?? [])].flatMap((a) => a.split(',')).filter((a) => a !== '');
    }
    if (v.has('add-host')) options.addHost = v.get('add-host') as string[];
    if (v.has('dns')) options.dns = v.get('dns') as string[];
    if (v.has('dns-search')) options.dnsSearch = v.get('dns-search') as string[];
    if (v.has('shm-size')) options.shmSize = v.get('shm-size') as string;
    if (v.has('log-max-size')) options.logMaxSize = v.get('log-max-size') as string;
    if (v.has('workdir')) options.cwd = v.get('workdir') as string;
    if (v.has('env') || v.has('env-file')) options.env = envFromFlags((v.get('env-file') as string[] | undefined) ?? [], (v.get('env') as string[] | undefined) ?? []);
    if (v.has('read-only')) options.readOnly = v.get('read-only') === true;
    if (v.has('writable-rootfs')) options.writableRootfs = v.get('writable-rootfs') === true;
    for (const opt of (v.get('storage-opt') as string[] | undefined) ?? []) {
      const [key, value] = [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)];
      if (key !== 'size' || !opt.includes('=')) {
        throw new TsboxError({ step: 'config', errno: 0, path: `--storage-opt ${opt}`, detail: 'unknown storage option', hint: 'tsbox takes --storage-opt size=SIZE (64m, 2g)' });
      }
      options.storageSize = value;
    }
    if (v.has('volume')) options.volumes = v.get('volume') as string[];
    if (v.has('tmpfs')) options.tmpfs = v.get('tmpfs') as string[];
    if (v.has('mount')) options.mounts = v.get('mount') as string[];
    if (v.has('rootfs-propagation')) options.rootfsPropagation = v.get('rootfs-propagation') as RunOptions['rootfsPropagation'];
    const tty = v.get('tty') === true;
    checkInteractiveTerminal(v.get('interactive') === true, tty);
    if (tty) {
      options.tty = true;
      options.stdio = 'pipe';
      // A terminal that reports no size (0x0, as a fresh pty) gets the default 80x24.
      const size = terminalSize();
      if (size) options.ttySize = size;
    }
    if (v.has('timeout')) options.timeout = parseDuration(v.get('timeout') as string, '--timeout');
    applyLimitFlags(options, v);
    if (v.has('preset')) options.preset = v.get('preset') as RunOptions['preset'];
    if (v.has('user')) options.user = v.get('user') as string;
    if (v.has('group-add')) options.groupAdd = v.get('group-add') as string[];
    if (v.has('cap-add')) options.capAdd = v.get('cap-add') as string[];
    if (v.has('cap-drop')) options.capDrop = v.get('cap-drop') as string[];
    if (v.has('uidmap')) options.uidMap = v.get('uidmap') as string[];
    if (v.has('gidmap')) options.gidMap = v.get('gidmap') as string[];
    if (v.has('userns')) {
      const u = v.get('userns') as string;
      if (u !== 'host' && u !== 'private') {
        throw new TsboxError({ step: 'config', errno: 0, path: '--userns', detail: `unknown mode "${u}"`, hint: 'use --userns host, or leave it out for a new user namespace' });
      }
      options.userns = u;
    }
    for (const opt of (v.get('security-opt') as string[] | undefined) ?? []) applySecurityOpt(options, opt);
    if (v.has('mask') || v.has('unmask')) {
      const unmask = new Set((v.get('unmask') as string[] | undefined) ?? []);
      const keep = (p: string) => !unmask.has('ALL') && !unmask.has(p);
      options.maskedPaths = [...DEFAULT_MASKED_PATHS.filter(keep), ...((v.get('mask') as string[] | undefined) ?? [])];
      options.readonlyPaths = DEFAULT_READONLY_PATHS.filter(keep);
    }
    if (options.image === undefined && imagePositional(rawArgs, split.command.length, options.rootfs !== undefined)) options.image = split.command.shift()!;
    if (options.image === undefined) {
      for (const flag of Object.keys(imageArgs)) {
        if (v.has(flag) && flag !== 'quiet') throw new TsboxError({ step: 'config', errno: 0, path: `--${flag}`, detail: 'needs an image', hint: 'tsbox run [OPTIONS] IMAGE [COMMAND...]' });
      }
    } else {
      if (v.has('pull')) {
        const policy = PULL_POLICIES.find((p) => p === v.get('pull'));
        if (policy === undefined) {
          throw new TsboxError({ step: 'config', errno: 0, path: `--pull ${v.get('pull') as string}`, detail: 'unknown pull policy', hint: 'use --pull missing (the default), always or never' });
        }
        options.pull = policy;
      }
      if (v.has('entrypoint')) options.entrypoint = (v.get('entrypoint') as string) === '' ? [] : [v.get('entrypoint') as string];
    }
    // An image's pull is made here, with its progress shown and Ctrl-C
    // ending it, rather than inside spawn; an image in the store is looked
    // up once, by the launch, under the store's lock.
    const insecure = (v.get('insecure-registry') as string[] | undefined) ?? [];
    const pullHere = async (policy: 'missing' | 'always') => {
      checkImageRunInput(split.command, options);
      const { ensureImage } = await import('../image/run.js');
      const { withProgress } = await import('../image/progress.js');
      const image = options.image!;
      await withProgress(v.get('quiet') === true, (onProgress) => ensureImage(image, policy, { onProgress, insecure }));
    };
    if (options.image !== undefined && options.pull === 'always') {
      await pullHere('always').catch((err: unknown) => {
        throw asFlagError(err, v, options);
      });
      options.pull = 'missing';
    }
    if (split.command.length === 0 && file?.command) split.command.push(...file.command);
    if (split.command.length === 0 && options.image === undefined) {
      throw new TsboxError({ step: 'config', errno: 0, path: 'COMMAND', detail: 'no command given', hint: "put the command after the options: tsbox run -- sh -c 'echo hi'" });
    }

    if (detach) {
      if (v.get('tty') === true) throw new TsboxError({ step: 'config', errno: 0, path: '--tty', detail: 'cannot be combined with --detach', hint: 'exec into the container with -it instead' });
      const container = await spawnPulling(split.command, options, insecure, () => pullHere('missing')).catch((err: unknown) => {
        throw asFlagError(err, v, options);
      });
      for (const n of container.notices) process.stderr.write(`${n}\n`);
      // The container is its monitor's now: this process leaves it at once
      // (its handle would otherwise keep it until the container ends).
      process.stdout.write(`${container.id}\n`, () => process.exit(0));
      await new Promise(() => {});
    }

    // Handlers go in before the launch: a signal that arrives while the
    // container starts is delivered once it runs, instead of killing tsbox.
    let container: Container | undefined;
    const pending: NodeJS.Signals[] = [];
    const forward = (sig: NodeJS.Signals) => (container ? container.kill(sig) : pending.push(sig));
    for (const sig of FORWARDED) process.on(sig, forward);
    const reportFlag = () => (v.has('report') ? openReport(v.get('report') as string) : null);
    let report = reportFlag();
    // Saved before the container can touch it.
    const restoreTerminal = tty ? () => {} : guardTerminal();
    try {
      try {
        // The signals a pull meets end it, as in `tsbox pull`; one that came
        // before it (a wait for the store's lock) ends it before it begins.
        // The report is not kept open across it: a pull cut short leaves none.
        container = await spawnPulling(split.command, options, insecure, async () => {
          for (const sig of FORWARDED) process.off(sig, forward);
          report?.discard();
          report = null;
          if (pending.length > 0) {
            restoreTerminal();
            process.kill(process.pid, pending[0]);
            await new Promise(() => {});
          }
          try {
            await pullHere('missing');
          } finally {
            for (const sig of FORWARDED) process.on(sig, forward);
          }
          report = reportFlag();
        });
      } catch (err) {
        report?.discard();
        throw asFlagError(err, v, options);
      }
      for (const n of container.notices) process.stderr.write(`${n}\n`);
      for (const sig of pending) container.kill(sig);
      const detach = tty ? attachTerminal(container, v.get('interactive') === true) : () => {};
      try {
        const result = await container.wait();
        process.exitCode = result.exitCode;
        // 137 as Docker's (SIGKILL), said out loud: a timeout is not a crash.
        // The flag as given, or the config file's milliseconds.
        const after = (v.get('timeout') as string | undefined) ?? `${String(options.timeout)}ms`;
        if (result.timedOut) process.stderr.write(`tsbox: the container was killed (SIGKILL, exit ${result.exitCode}) after its ${after} timeout\n`);
        report?.write(result);
      } finally {
        detach();
      }
    } finally {
      restoreTerminal();
      for (const sig of FORWARDED) process.off(sig, forward);
    }
  },
});

export default run;

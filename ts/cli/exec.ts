/** `tsbox exec [-it] [-u U] [-w DIR] [-e K=V] NAME CMD...`: run a command in a running container; runc's `exec` for a container of `tsbox create`. */
import { isatty } from 'node:tty';

import { defineCommand } from 'citty';

import type { Container, ExecOptions } from '../runtime/container.js';

import { open } from '../runtime/lifecycle.js';
import { findOciState } from '../runtime/state.js';
import { kebab } from '../suggest.js';
import { TsboxError } from '../errors.js';
import { envFromFlags, splitArgs } from './args.js';
import { attachTerminal, checkInteractiveTerminal, preservedFds, terminalSize } from './common.js';
import { showCommandHelp } from './help.js';

const args = {
  tty: { type: 'boolean', alias: 't', description: 'Give the command a pseudo-terminal' },
  interactive: { type: 'boolean', alias: 'i', description: 'Keep stdin attached (with -t: an interactive terminal)' },
  user: { type: 'string', alias: 'u', valueHint: 'USER[:GROUP]', description: "Run as this user (default: the container's)" },
  workdir: { type: 'string', alias: 'w', valueHint: 'DIR', description: "Working directory (default: the container's)" },
  env: { type: 'string', alias: 'e', valueHint: 'KEY=VALUE', description: 'Set an environment variable (repeatable)' },
  'env-file': { type: 'string', valueHint: 'FILE', description: "Read environment variables from FILE (repeatable), as Docker's; -e wins" },
  detach: { type: 'boolean', alias: 'd', description: 'Leave the command running in the background' },
} as const;

/** runc's exec flags, for a container of `tsbox create`. */
const ociArgs = {
  process: { type: 'string', alias: 'p', valueHint: 'FILE', description: 'An OCI process (JSON) to run as it is' },
  consoleSocket: { type: 'string', valueHint: 'PATH', description: "A Unix socket to send the terminal's master to" },
  cwd: { type: 'string', valueHint: 'DIR', description: 'Working directory' },
  env: { type: 'string', alias: 'e', valueHint: 'KEY=VALUE', description: 'Set an environment variable (repeatable)' },
  tty: { type: 'boolean', alias: 't', description: 'A pseudo-terminal (through --console-socket)' },
  user: { type: 'string', alias: 'u', valueHint: 'UID[:GID]', description: 'Run as this uid and gid (numbers)' },
  'additional-gids': { type: 'string', alias: 'g', valueHint: 'GID', description: 'A supplementary group (repeatable)' },
  cap: { type: 'string', alias: 'c', valueHint: 'CAP_X', description: 'Add a capability (repeatable)' },
  noNewPrivs: { type: 'boolean', description: 'Set no_new_privs' },
  pidFile: { type: 'string', valueHint: 'FILE', description: "Write the process's pid to FILE" },
  detach: { type: 'boolean', alias: 'd', description: "Leave the process to the container's monitor and return" },
  preserveFds: { type: 'string', valueHint: 'N', description: 'Pass N more file descriptors' },
  ignorePaused: { type: 'boolean', description: 'Exec into a paused container too' },
  processLabel: { type: 'string', valueHint: 'LABEL', description: 'An SELinux label (refused: tsbox has no SELinux support)' },
  apparmor: { type: 'string', valueHint: 'PROFILE', description: 'An AppArmor profile (refused: tsbox has no AppArmor support)' },
  cgroup: { type: 'string', valueHint: 'PATH', description: 'A sub-cgroup (refused: not supported yet)' },
} as const;

/** A flag only runc's exec has: the call is runc's form. */
const OCI_ONLY = /^(--(process|console-socket|cwd|additional-gids|cap|no-new-privs|pid-file|preserve-fds|ignore-paused|process-label|apparmor|cgroup)(=|$)|-[pgc]$)/;
/** The flags of either form that take a value (the next word, without =). */
const TAKES_VALUE = /^(--(user|workdir|env|env-file|process|console-socket|cwd|additional-gids|cap|pid-file|preserve-fds|process-label|apparmor|cgroup)|-[uwepgc])$/;

/** Whether the flags (before the container, not the command's own) are runc's. */
function ociForm(rawArgs: readonly string[]): boolean {
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === '--' || !a.startsWith('-') || a === '-') return false;
    if (OCI_ONLY.test(a)) return true;
    if (TAKES_VALUE.test(a)) i++;
  }
  return false;
}

/** runc's `exec [OPTIONS] ID [CMD...]`, for a container of `tsbox create`. */
async function ociExec(rawArgs: readonly string[]): Promise<void> {
  const split = splitArgs(rawArgs, ociArgs, 'exec');
  const v = split.values;
  for (const flag of ['processLabel', 'apparmor', 'cgroup'] as const) {
    if (v.has(flag)) throw new TsboxError({ step: 'config', errno: 95, path: `--${kebab(flag)}`, detail: 'is not supported by tsbox', hint: null });
  }
  const [id, ...argv] = split.command;
  const { ociExec: run } = await import('../oci/exec.js');
  const detach = v.get('detach') === true;
  const c = await run(id, {
    processFile: v.get('process') as string | undefined,
    args: argv,
    cwd: v.get('cwd') as string | undefined,
    env: (v.get('env') as string[] | undefined) ?? [],
    user: v.get('user') as string | undefined,
    additionalGids: (v.get('additional-gids') as string[] | undefined) ?? [],
    caps: (v.get('cap') as string[] | undefined) ?? [],
    noNewPrivs: v.get('noNewPrivs') === true,
    tty: v.get('tty') === true,
    consoleSocket: v.get('consoleSocket') as string | undefined,
    pidFile: v.get('pidFile') as string | undefined,
    detach,
    preserveFds: preservedFds(v),
    ignorePaused: v.get('ignorePaused') === true,
  });
  if (detach || c === null) process.exit(0);
  // A terminal not sent to a console socket is this one's, as run -it's.
  const restore = v.get('tty') === true && !v.has('consoleSocket') ? attachTerminal(c, true) : () => {};
  try {
    process.exitCode = (await c.wait()).exitCode;
  } finally {
    restore();
  }
}

/**
 * Without -t: our stdin, stdout and stderr as they are, but a terminal only
 * through a pipe this process pumps. The command may leave a process in the
 * background that keeps what it was given after the exec has returned: a
 * terminal of ours would then be the container's to read (the keys typed
 * next) and write (escape sequences to it), for as long as it likes. A pipe
 * ends with this process. Files and pipes are passed as they are: what is
 * behind them is the command's to have. A terminal on stdin is read only
 * with -i, as Docker's exec does (reading it otherwise would take keys the
 * command never asked for, and stop a background job of the shell).
 */
function execStdio(interactive: boolean): ExecOptions['stdio'] {
  const output = (fd: number) => (isatty(fd) ? 'pipe' : 'inherit');
  return [!isatty(0) ? 'inherit' : interactive ? 'pipe' : 'ignore', output(1), output(2)];
}

/** Pumps our terminals to and from the pipes execStdio gave the command. Returns the undo. */
function pump(c: Container): () => void {
  c.stdout?.pipe(process.stdout, { end: false });
  c.stderr?.pipe(process.stderr, { end: false });
  if (c.stdin) process.stdin.pipe(c.stdin);
  return () => {
    if (!c.stdin) return;
    process.stdin.unpipe(c.stdin);
    process.stdin.pause();
  };
}

const command = defineCommand({
  meta: { name: 'tsbox exec', description: "Run a command in a running container, with its user, capabilities, seccomp filter and limits" },
  args,
  async run({ rawArgs, cmd }) {
    if (ociForm(rawArgs)) return ociExec(rawArgs);
    const split = splitArgs(rawArgs, args, 'exec');
    if (split.help) {
      await showCommandHelp(cmd, 'exec');
      return;
    }
    const [ref, ...argv] = split.command;
    // A container of `tsbox create` runs its config's process, changed by the flags.
    if (ref !== undefined && findOciState(ref) !== undefined) {
      // Docker's spellings, as runc's: -w is --cwd; stdin is always the caller's (-i).
      const ours = rawArgs.slice(0, rawArgs.length - split.command.length);
      const theirs = ours.filter((a) => a !== '-i' && a !== '--interactive').map((a) => (a === '-it' || a === '-ti' ? '-t' : a === '-w' ? '--cwd' : a.replace(/^--workdir(?==|$)/, '--cwd')));
      return ociExec([...theirs, ...split.command]);
    }
    if (ref === undefined || argv.length === 0) {
      throw new TsboxError({ step: 'config', errno: 0, path: 'exec', detail: 'needs a container and a command: tsbox exec NAME CMD...', hint: 'see `tsbox exec --help`' });
    }
    const v = split.values;
    const tty = v.get('tty') === true;
    checkInteractiveTerminal(v.get('interactive') === true, tty);
    const detach = v.get('detach') === true;
    const size = tty ? terminalSize() : undefined;
    const c = await open(ref).exec(argv, {
      stdio: detach ? 'ignore' : tty ? 'inherit' : execStdio(v.get('interactive') === true),
      detach,
      tty,
      ...(size ? { ttySize: size } : {}),
      ...(v.has('user') ? { user: v.get('user') as string } : {}),
      ...(v.has('workdir') ? { cwd: v.get('workdir') as string } : {}),
      ...(v.has('env') || v.has('env-file') ? { env: envFromFlags((v.get('env-file') as string[] | undefined) ?? [], (v.get('env') as string[] | undefined) ?? []) } : {}),
    });
    // The process is the monitor's now: this one leaves at once (the
    // connection's handle would otherwise keep it).
    if (detach || c === null) process.exit(0);
    // The same terminal handling as run's: raw with -i, and its size follows ours.
    const restore = tty ? attachTerminal(c, v.get('interactive') === true) : pump(c);
    try {
      process.exitCode = (await c.wait()).exitCode;
    } finally {
      restore();
    }
  },
});

export default command;

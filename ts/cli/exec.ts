/** `tsbox exec [-it] [-u U] [-w DIR] [-e K=V] NAME CMD...`: run a command in a running container. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { TsboxError } from '../errors.js';
import { envFromFlags, splitArgs } from './args.js';
import { attachTerminal, checkInteractiveTerminal, terminalSize } from './common.js';
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

const command = defineCommand({
  meta: { name: 'tsbox exec', description: "Run a command in a running container, with its user, capabilities, seccomp filter and limits" },
  args,
  async run({ rawArgs, cmd }) {
    const split = splitArgs(rawArgs, args, 'exec');
    if (split.help) {
      await showCommandHelp(cmd, 'exec');
      return;
    }
    const [ref, ...argv] = split.command;
    if (ref === undefined || argv.length === 0) {
      throw new TsboxError({ step: 'config', errno: 0, path: 'exec', detail: 'needs a container and a command: tsbox exec NAME CMD...', hint: 'see `tsbox exec --help`' });
    }
    const v = split.values;
    const tty = v.get('tty') === true;
    checkInteractiveTerminal(v.get('interactive') === true, tty);
    const detach = v.get('detach') === true;
    const size = tty ? terminalSize() : undefined;
    const c = await open(ref).exec(argv, {
      stdio: detach ? 'ignore' : 'inherit',
      detach,
      tty,
      ...(size ? { ttySize: size } : {}),
      ...(v.has('user') ? { user: v.get('user') as string } : {}),
      ...(v.has('workdir') ? { cwd: v.get('workdir') as string } : {}),
      ...(v.has('env') || v.has('env-file') ? { env: envFromFlags((v.get('env-file') as string[] | undefined) ?? [], (v.get('env') as string[] | undefined) ?? []) } : {}),
    });
    // The process is the monitor's now: this one leaves at once (the
    // connection's handle would otherwise keep it).
    if (detach) process.exit(0);
    // The same terminal handling as run's: raw with -i, and its size follows ours.
    const restore = tty ? attachTerminal(c, v.get('interactive') === true) : () => {};
    try {
      process.exitCode = (await c.wait()).exitCode;
    } finally {
      restore();
    }
  },
});

export default command;

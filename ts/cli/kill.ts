/** `tsbox kill [-s SIG] NAME...`: signal containers' PID 1; `tsbox kill [--all] ID [SIGNAL]` for an OCI container. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { findOciState } from '../runtime/state.js';
import { signalNumber } from '../runtime/protocol.js';
import { TsboxError } from '../errors.js';
import { eachContainer, parse } from './common.js';

const args = {
  signal: { type: 'string', alias: 's', valueHint: 'SIG', description: 'The signal: a name (TERM, SIGTERM) or number. Default KILL' },
  all: { type: 'boolean', alias: 'a', description: "Every process in the container's cgroup too (an OCI container: runc's kill --all)" },
} as const;

/** `KILL`, `SIGKILL`, `9` → 9. */
export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    // The monitor cannot report a signal the kernel refuses: refuse it here.
    const n = Number(s);
    if (n < 1 || n > 64) throw new TsboxError({ step: 'config', errno: 22, path: '--signal', detail: `${s} is not a signal number`, hint: 'signals are 1 to 64 (SIGRTMAX)' });
    return n;
  }
  const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
  try {
    return signalNumber(name as NodeJS.Signals);
  } catch {
    throw new TsboxError({ step: 'config', errno: 0, path: '--signal', detail: `unknown signal "${s}"`, hint: 'a name such as TERM or SIGKILL, or a number' });
  }
}

/** Whether `id` names a container made by `tsbox create` (an OCI bundle's). */
function isOci(id: string): boolean {
  return findOciState(id) !== undefined;
}

const command = defineCommand({
  meta: { name: 'tsbox kill', description: "Send a signal to containers' PID 1 (default SIGKILL)" },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'kill', { min: 1, max: Infinity, usage: 'one or more containers' });
    if (!split) return;
    // A container of `tsbox create` takes runc's form: `kill [--all] ID [SIGNAL]`, SIGTERM by default.
    const [id, sig, ...rest] = split.command;
    if (split.values.get('signal') === undefined && rest.length === 0 && isOci(id!)) {
      const { ociKill } = await import('../oci/runtime.js');
      ociKill(id, parseSignal(sig ?? 'TERM'), split.values.get('all') === true);
      return;
    }
    if (split.values.get('all') === true) throw new TsboxError({ step: 'config', errno: 22, path: '--all', detail: 'is for containers made by `tsbox create` (runc\'s kill --all ID SIGNAL)', hint: null });
    const signo = parseSignal((split.values.get('signal') as string | undefined) ?? 'KILL');
    await eachContainer(split.command, (ref) => open(ref).kill(signo));
  },
});

export default command;

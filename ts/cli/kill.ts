/** `tsbox kill [-s SIG] NAME...`: signal containers' PID 1. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { signalNumber } from '../runtime/protocol.js';
import { TsboxError } from '../errors.js';
import { eachContainer, parse } from './common.js';

const args = { signal: { type: 'string', alias: 's', valueHint: 'SIG', description: 'The signal: a name (TERM, SIGTERM) or number. Default KILL' } } as const;

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

const command = defineCommand({
  meta: { name: 'tsbox kill', description: "Send a signal to containers' PID 1 (default SIGKILL)" },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'kill', { min: 1, max: Infinity, usage: 'one or more containers' });
    if (!split) return;
    const signo = parseSignal((split.values.get('signal') as string | undefined) ?? 'KILL');
    await eachContainer(split.command, (ref) => open(ref).kill(signo));
  },
});

export default command;

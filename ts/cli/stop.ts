/** `tsbox stop [-t SECONDS] NAME...`: the stop signal (SIGTERM by default), then SIGKILL after the timeout. */
import { defineCommand } from 'citty';

import { open } from '../runtime/lifecycle.js';
import { TsboxError } from '../errors.js';
import { eachContainer, parse } from './common.js';

const args = { time: { type: 'string', alias: 't', valueHint: 'SECONDS', description: 'Seconds to wait after the stop signal before SIGKILL (default 10)' } } as const;

const command = defineCommand({
  meta: { name: 'tsbox stop', description: "Stop containers: their stop signal (SIGTERM, unless --stop-signal or the image's StopSignal said another), then SIGKILL after the timeout" },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'stop', { min: 1, max: Infinity, usage: 'one or more containers' });
    if (!split) return;
    const t = split.values.has('time') ? Number(split.values.get('time')) : 10;
    if (!Number.isFinite(t) || t < 0) throw new TsboxError({ step: 'config', errno: 0, path: '--time', detail: `"${String(split.values.get('time'))}" is not a number of seconds`, hint: null });
    await eachContainer(split.command, (ref) => open(ref).stop(t));
  },
});

export default command;

/** `tsbox seccomp default`: prints tsbox's default seccomp profile (OCI JSON), to edit and pass back with --security-opt seccomp=PATH. */
import { defineCommand } from 'citty';

import { TsboxError } from '../errors.js';
import { defaultSeccompProfile } from '../index.js';
import { parse } from './common.js';

const command = defineCommand({
  meta: {
    name: 'tsbox seccomp',
    description: "Print tsbox's default seccomp profile as OCI JSON: `tsbox seccomp default > profile.json`, edit it, and run with --security-opt seccomp=profile.json",
  },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'seccomp', { min: 1, max: 1, usage: 'one argument: default' });
    if (!split) return;
    const what = split.command[0]!;
    if (what !== 'default') {
      throw new TsboxError({ step: 'config', errno: 0, path: what, detail: 'unknown seccomp command', hint: 'tsbox seccomp default prints the default profile' });
    }
    process.stdout.write(`${JSON.stringify(defaultSeccompProfile(), null, 2)}\n`);
  },
});

export default command;

// ts/cli/completion.ts: the completion scripts come from the commands' own flag tables.
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { containerArgs } from '../../ts/cli/args.js';
import { bashScript, commandFlags, fishScript, zshScript } from '../../ts/cli/completion.js';

const commands = {
  run: () => Promise.resolve({ meta: { description: 'Run a command' }, args: containerArgs }),
  ps: () => Promise.resolve({ meta: { description: 'List containers' }, args: { all: { type: 'boolean' as const, alias: 'a' } } }),
};

/** What bash completes for `words`, the last being the word under the cursor. */
function complete(script: string, words: string[]): string[] {
  const cmd = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _tsbox; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

describe('tsbox completion (issue 19)', () => {
  it('bash completes commands, then the flags of the command at hand, every one of them', async () => {
    const flags = await commandFlags(commands);
    const script = bashScript(flags);
    expect(complete(script, ['tsbox', 'r'])).toEqual(['run']);
    expect(complete(script, ['tsbox', 'run', '--roo'])).toEqual(['--rootfs', '--rootfs-propagation']);
    expect(complete(script, ['tsbox', 'ps', '-'])).toEqual(['--all', '-a', '--help']);
    const all = complete(script, ['tsbox', 'run', '-']);
    for (const name of Object.keys(containerArgs)) expect(all, name).toContain(`--${name}`);
  });

  it('zsh uses the same function; fish gets a line per flag, values marked', async () => {
    const flags = await commandFlags(commands);
    expect(zshScript(flags)).toContain('bashcompinit');
    expect(zshScript(flags)).toContain('complete -o filenames -F _tsbox tsbox');
    const fish = fishScript(flags);
    expect(fish).toContain('complete -c tsbox -n "__fish_seen_subcommand_from run" -l rootfs -r');
    expect(fish).toContain('complete -c tsbox -n "__fish_seen_subcommand_from ps" -l all -s a -d');
  });
});

/**
 * `tsbox completion bash|zsh|fish`: a shell completion script, made from the
 * same command and flag tables as the help, so the two cannot disagree.
 *
 *   source <(tsbox completion bash)          # ~/.bashrc
 *   source <(tsbox completion zsh)           # ~/.zshrc
 *   tsbox completion fish > ~/.config/fish/completions/tsbox.fish
 */
import { defineCommand, type CommandDef } from 'citty';

import { TsboxError } from '../errors.js';
import { kebab } from '../suggest.js';
import { parse } from './common.js';

/** A command's flags as a shell sees them: `--long` and `-s` names, and whether each takes a value. */
export interface CommandFlags {
  name: string;
  description: string;
  flags: { long: string; short: string[]; value: boolean; description: string }[];
}

/** The flags of each command, from its citty definition. */
export async function commandFlags(commands: Record<string, () => Promise<CommandDef>>): Promise<CommandFlags[]> {
  const out: CommandFlags[] = [];
  for (const [name, load] of Object.entries(commands)) {
    const def = await load();
    const meta = (typeof def.meta === 'function' ? await def.meta() : await def.meta) ?? {};
    const args = ((typeof def.args === 'function' ? await def.args() : await def.args) ?? {});
    const flags = Object.entries(args)
      .filter(([, a]) => a.type !== 'positional')
      .flatMap(([long, a]) => ('negativeDescription' in a && a.negativeDescription ? [[long, a], [`no-${long}`, { ...a, alias: undefined, description: a.negativeDescription }]] : [[long, a]]) as [string, typeof a][])
      .map(([long, a]) => ({
        long: kebab(long),
        short: 'alias' in a && a.alias ? (Array.isArray(a.alias) ? a.alias : [a.alias]).filter((s) => s.length === 1) : [],
        value: a.type === 'string',
        description: a.description ?? '',
      }));
    out.push({ name, description: meta.description ?? '', flags: [...flags, { long: 'help', short: [], value: false, description: 'Show help' }] });
  }
  return out;
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** A bash completion function: commands, then each command's flags; file names for everything else (values, paths, the command). */
export function bashScript(cmds: CommandFlags[]): string {
  const cases = cmds
    .map((c) => {
      const words = c.flags.flatMap((f) => [`--${f.long}`, ...f.short.map((s) => `-${s}`)]).join(' ');
      return `    ${c.name}) opts=${quote(words)} ;;`;
    })
    .join('\n');
  return `# tsbox completion for bash: source <(tsbox completion bash)
_tsbox() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts=''
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W ${quote(cmds.map((c) => c.name).join(' '))} -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _tsbox tsbox
`;
}

/** zsh runs the bash function through its bashcompinit. */
export function zshScript(cmds: CommandFlags[]): string {
  return `# tsbox completion for zsh: source <(tsbox completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(cmds).split('\n').slice(1).join('\n')}`;
}

/** fish's own completions, one line per command and flag. */
export function fishScript(cmds: CommandFlags[]): string {
  const names = cmds.map((c) => c.name).join(' ');
  const lines = ['# tsbox completion for fish: tsbox completion fish > ~/.config/fish/completions/tsbox.fish', 'complete -c tsbox -f'];
  for (const c of cmds) lines.push(`complete -c tsbox -n "not __fish_seen_subcommand_from ${names}" -a ${c.name} -d ${quote(c.description.slice(0, 80))}`);
  for (const c of cmds) {
    for (const f of c.flags) {
      const short = f.short.map((s) => ` -s ${s}`).join('');
      lines.push(`complete -c tsbox -n "__fish_seen_subcommand_from ${c.name}" -l ${f.long}${short}${f.value ? ' -r' : ''} -d ${quote(f.description.slice(0, 80))}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function completionCommand(commands: Record<string, () => Promise<CommandDef>>): CommandDef {
  return defineCommand({
    meta: { name: 'tsbox completion', description: 'Print a shell completion script: source <(tsbox completion bash), source <(tsbox completion zsh), or tsbox completion fish > ~/.config/fish/completions/tsbox.fish' },
    args: {},
    async run({ rawArgs, cmd }) {
      const split = await parse(rawArgs, {}, cmd, 'completion', { min: 1, max: 1, usage: 'one argument: bash, zsh or fish' });
      if (!split) return;
      const shell = split.command[0]!;
      const make = { bash: bashScript, zsh: zshScript, fish: fishScript }[shell];
      if (!make) throw new TsboxError({ step: 'config', errno: 0, path: shell, detail: 'unknown shell', hint: 'tsbox completion bash, zsh or fish' });
      process.stdout.write(make(await commandFlags(commands)));
    },
  });
}

/**
 * Help text, rendered here rather than by citty: it fits the terminal (80
 * columns when stdout is not one), wraps long descriptions under their flag,
 * and ends with examples.
 */
import type { ArgsDef, CommandDef } from 'citty';

import { kebab } from '../suggest.js';

/** Where lines break: the terminal's width (at most 100), else 80. */
export function helpWidth(): number {
  const cols = process.stdout.isTTY ? process.stdout.columns : 0;
  return cols && cols >= 40 ? Math.min(cols, 100) : 80;
}

/** `text` in lines of at most `width`, each after `indent` spaces (the first too). */
export function wrap(text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`);
}

/** The flag column of an option: `-v, --volume SRC:DST`. */
function flagText(name: string, a: ArgsDef[string]): string {
  const long = `--${kebab(name)}`;
  const aliases = 'alias' in a && a.alias ? (Array.isArray(a.alias) ? a.alias : [a.alias]) : [];
  const short = aliases.filter((s) => s.length === 1).map((s) => `-${s}, `).join('');
  const value = a.type === 'string' ? ` ${'valueHint' in a && a.valueHint ? a.valueHint : 'VALUE'}` : '';
  return `${short || '    '}${long}${value}`;
}

export interface HelpText {
  usage: string;
  description: string;
  args: ArgsDef;
  examples?: string;
}

/** The help of a command, for `width` columns. */
export function renderHelp(h: HelpText, width = helpWidth()): string {
  const out = [`Usage: ${h.usage}`, '', ...wrap(h.description, width, 0), ''];
  const options = Object.entries(h.args).filter(([, a]) => a.type !== 'positional');
  if (options.length > 0) {
    out.push('Options:');
    // A boolean with a negative description has its --no- form listed too.
    const flags = options.flatMap(([name, a]) => {
      const negative = 'negativeDescription' in a && typeof a.negativeDescription === 'string' ? [[`    --no-${name}`, a.negativeDescription] as const] : [];
      return [[flagText(name, a), a.description ?? ''] as const, ...negative];
    });
    const column = Math.min(Math.max(...flags.map(([f]) => f.length)) + 4, 34);
    for (const [flag, description] of [...flags, ['    --help', 'Show this help'] as const]) {
      const text = wrap(description, width, column);
      if (2 + flag.length + 2 <= column && text.length > 0) {
        out.push(`  ${flag.padEnd(column - 2)}${text[0]!.slice(column)}`, ...text.slice(1));
      } else {
        out.push(`  ${flag}`, ...text);
      }
    }
    out.push('');
  }
  if (h.examples) out.push(h.examples.trimEnd(), '');
  return `${out.join('\n')}`;
}

/** Prints the help of a citty command: how it is called, its description and flags, and `examples`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any command, whatever its args
export async function showHelp(cmd: CommandDef<any>, usage: string, examples?: string): Promise<void> {
  const def = cmd as CommandDef;
  const meta = (typeof def.meta === 'function' ? await def.meta() : await def.meta) ?? {};
  const args: ArgsDef = (typeof def.args === 'function' ? await def.args() : await def.args) ?? {};
  process.stdout.write(renderHelp({ usage, description: meta.description ?? '', args, ...(examples ? { examples } : {}) }));
}

/** How each command is called, and examples (each line within 80 columns). */
export const USAGE: Readonly<Record<string, { usage: string; examples?: string }>> = {
  run: {
    usage: 'tsbox run [OPTIONS] IMAGE|--rootfs DIR|-- [COMMAND [ARGS...]]',
    examples: `Examples:
  # an image, pulled when it is not in the store, with its command
  tsbox run alpine:3.20
  tsbox run -e MODE=test alpine:3.20 sh -c 'echo $MODE'
  # the host's root, read-only, in new namespaces
  tsbox run -- sh -c 'echo $$; id -u; hostname'
  # an unpacked image as the root, and a volume
  tsbox run --rootfs ./rootfs -v ./data:/data:ro -- sh
  # an interactive shell on a terminal
  tsbox run -it --rootfs ./rootfs -- sh
  # limits, and the outcome as JSON on stderr
  tsbox run -m 256m --cpus 0.5 --pids-limit 64 --report - -- ./job
  # every setup step, timed, on stderr
  tsbox run --trace -- true
  # in the background, by name
  tsbox run -d --name web --rootfs ./rootfs -- httpd -f

Exit status: the command's; 128+N when signal N ended it; 125 when tsbox
failed, 126 when the command is not executable, 127 when it was not found.`,
  },
  exec: {
    usage: 'tsbox exec [OPTIONS] NAME COMMAND [ARGS...]',
    examples: `Examples:
  tsbox exec web ps
  tsbox exec -it -u nobody -w /tmp web sh`,
  },
  ps: { usage: 'tsbox ps [OPTIONS]  |  tsbox ps [--format table|json] ID [PS OPTIONS]', examples: 'Examples:\n  tsbox ps -a\n  tsbox ps -q --format json\n  # the processes of a container of `tsbox create`\n  tsbox ps c1' },
  logs: { usage: 'tsbox logs [OPTIONS] NAME', examples: 'Examples:\n  tsbox logs -f web' },
  stop: { usage: 'tsbox stop [OPTIONS] NAME...', examples: 'Examples:\n  tsbox stop -t 5 web' },
  kill: { usage: 'tsbox kill [OPTIONS] NAME...  |  tsbox kill [--all] ID [SIGNAL]', examples: 'Examples:\n  tsbox kill -s SIGHUP web\n  # a container of `tsbox create` (runc\'s form; SIGTERM by default)\n  tsbox kill c1 KILL' },
  rm: { usage: 'tsbox rm [OPTIONS] NAME...', examples: 'Examples:\n  tsbox rm -f web' },
  inspect: { usage: 'tsbox inspect NAME...', examples: 'Examples:\n  tsbox inspect web' },
  port: { usage: 'tsbox port NAME [PORT[/tcp|udp]]', examples: 'Examples:\n  tsbox port web\n  tsbox port web 8000/tcp' },
  gc: { usage: 'tsbox gc' },
  pull: { usage: 'tsbox pull [OPTIONS] REF', examples: 'Examples:\n  tsbox pull alpine:3.20\n  tsbox pull -q localhost:5000/app@sha256:<digest>\n  tsbox pull --insecure-registry reg.lan:5000 reg.lan:5000/app:1' },
  images: { usage: 'tsbox images [OPTIONS]', examples: 'Examples:\n  tsbox images\n  tsbox images --format json' },
  rmi: { usage: 'tsbox rmi [OPTIONS] REF...', examples: 'Examples:\n  tsbox rmi alpine:3.20' },
  image: { usage: 'tsbox image inspect REF  |  prune  |  export REF DIR', examples: 'Examples:\n  tsbox image inspect alpine\n  tsbox image prune\n  tsbox image export alpine ./bundle && tsbox run --bundle ./bundle c1' },
  load: { usage: 'tsbox load [OPTIONS] -i FILE|DIR', examples: 'Examples:\n  docker save app:1 > app.tar && tsbox load -i app.tar\n  skopeo copy docker://... oci:dir:1 && tsbox load -i dir' },
  import: { usage: 'tsbox import [OPTIONS] TAR NAME', examples: 'Examples:\n  tar -C rootfs -czf rootfs.tgz . && tsbox import rootfs.tgz mine:1\n  tsbox run mine:1 sh' },
  seccomp: { usage: 'tsbox seccomp default', examples: 'Examples:\n  tsbox seccomp default > profile.json\n  tsbox run --security-opt seccomp=profile.json -- sh' },
  completion: { usage: 'tsbox completion bash|zsh|fish', examples: 'Examples:\n  source <(tsbox completion bash)' },
  create: {
    usage: 'tsbox [GLOBAL OPTIONS] create [OPTIONS] ID',
    examples: `Examples:
  tsbox spec && tsbox create --bundle . --pid-file c1.pid c1 && tsbox start c1

Global options (before the command, as runc's): --root DIR (state, default
/run/tsbox as root), --log FILE, --log-format text|json, --debug,
--rootless auto|true|false.`,
  },
  start: { usage: 'tsbox start ID', examples: 'Examples:\n  tsbox start c1' },
  state: { usage: 'tsbox state ID', examples: 'Examples:\n  tsbox state c1' },
  delete: { usage: 'tsbox delete [OPTIONS] ID...', examples: 'Examples:\n  tsbox delete --force c1' },
  list: { usage: 'tsbox list [OPTIONS]', examples: 'Examples:\n  tsbox list --format json' },
  spec: { usage: 'tsbox spec [OPTIONS]', examples: 'Examples:\n  mkdir -p bundle/rootfs && tsbox spec --bundle bundle' },
  features: { usage: 'tsbox features' },
  pause: { usage: 'tsbox pause ID', examples: 'Examples:\n  tsbox pause c1 && tsbox resume c1' },
  resume: { usage: 'tsbox resume ID', examples: 'Examples:\n  tsbox resume c1' },
  events: { usage: 'tsbox events [OPTIONS] ID', examples: 'Examples:\n  tsbox events --stats c1\n  tsbox events --interval 1s c1' },
  update: { usage: 'tsbox update [OPTIONS] ID', examples: 'Examples:\n  tsbox update --memory 128m --pids-limit 200 c1\n  echo \'{"pids":{"limit":50}}\' | tsbox update --resources - c1' },
};

/** The help of command `name` (run, ps, ...). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any command, whatever its args
export async function showCommandHelp(cmd: CommandDef<any>, name: string): Promise<void> {
  const u = USAGE[name];
  await showHelp(cmd, u?.usage ?? `tsbox ${name} [OPTIONS]`, u?.examples);
}

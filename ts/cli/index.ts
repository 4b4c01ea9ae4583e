/**
 * The tsbox CLI. Commands are thin: they parse flags into the options the API
 * takes and call it. Help is handled here rather than by citty's runMain, so
 * that `-h` after the container's command belongs to the command.
 */
import type { CommandContext, CommandDef } from 'citty';
import { config } from 'zod/mini';

import { TsboxError } from '../errors.js';
import { version } from './version.js';

// The CLI parses its options once. zod's JIT compiles a parser for each object
// schema (new Function) at its first parse: in a process that parses once, that
// costs more than it saves (~8 ms a start, measured). Set before any schema exists.
config({ jitless: true });

const subCommands: Record<string, () => Promise<CommandDef>> = {
  run: () => import('./run.js').then((m) => m.default as CommandDef),
  ps: () => import('./ps.js').then((m) => m.default as CommandDef),
  exec: () => import('./exec.js').then((m) => m.default as CommandDef),
  logs: () => import('./logs.js').then((m) => m.default as CommandDef),
  stop: () => import('./stop.js').then((m) => m.default as CommandDef),
  kill: () => import('./kill.js').then((m) => m.default as CommandDef),
  rm: () => import('./rm.js').then((m) => m.default as CommandDef),
  inspect: () => import('./inspect.js').then((m) => m.default as CommandDef),
  port: () => import('./port.js').then((m) => m.default as CommandDef),
  gc: () => import('./gc.js').then((m) => m.default as CommandDef),
  seccomp: () => import('./seccomp.js').then((m) => m.default as CommandDef),
  pull: () => import('./pull.js').then((m) => m.default as CommandDef),
  images: () => import('./images.js').then((m) => m.default as CommandDef),
  rmi: () => import('./rmi.js').then((m) => m.default as CommandDef),
  image: () => import('./image.js').then((m) => m.default as CommandDef),
  load: () => import('./load.js').then((m) => m.default as CommandDef),
  import: () => import('./import.js').then((m) => m.default as CommandDef),
  // The OCI runtime's (runc's command line).
  create: () => import('./oci.js').then((m) => m.create as CommandDef),
  start: () => import('./oci.js').then((m) => m.start as CommandDef),
  state: () => import('./oci.js').then((m) => m.state as CommandDef),
  delete: () => import('./oci.js').then((m) => m.del as CommandDef),
  list: () => import('./oci.js').then((m) => m.list as CommandDef),
  spec: () => import('./oci.js').then((m) => m.spec as CommandDef),
  features: () => import('./oci.js').then((m) => m.features as CommandDef),
  pause: () => import('./oci.js').then((m) => m.pause as CommandDef),
  resume: () => import('./oci.js').then((m) => m.resume as CommandDef),
  update: () => import('./oci.js').then((m) => m.update as CommandDef),
  events: () => import('./oci.js').then((m) => m.events as CommandDef),
  // It completes every command, itself included.
  completion: () => import('./completion.js').then((m) => m.completionCommand(subCommands)),
};

/** `tsbox --help`: the commands, each with the first sentence of its description. */
async function showTopHelp(): Promise<void> {
  const { helpWidth, wrap } = await import('./help.js');
  const width = helpWidth();
  const out = ['Usage: tsbox COMMAND [OPTIONS] [ARGS...]', '', ...wrap('Linux containers for Node.js: real namespaces, id maps, pivot_root, capabilities, seccomp and cgroups, with no daemon.', width, 0), '', 'Commands:'];
  for (const [name, load] of Object.entries(subCommands)) {
    const def = await load();
    const meta = (typeof def.meta === 'function' ? await def.meta() : await def.meta) ?? {};
    const first = (meta.description ?? '').split(/[:.(]/)[0]!.trim();
    const text = wrap(first, width, 14);
    out.push(`  ${name.padEnd(12)}${text[0]?.slice(14) ?? ''}`, ...text.slice(1));
  }
  out.push('', 'Run `tsbox help COMMAND` for its options and examples; `tsbox --version`.', 'Example:', "  tsbox run -- sh -c 'echo $$; id -u; hostname'", '');
  process.stdout.write(out.join('\n'));
}

/** runc's global flags, which podman and containerd put before the command. */
const GLOBAL_FLAG = /^--(root|log|log-format|debug|systemd-cgroup|rootless|criu)(=|$)/;

export async function cli(argv: string[]): Promise<number> {
  // Loaded only when an OCI caller gave global flags: errors then go to its --log too.
  let oci: typeof import('./oci.js') | undefined;
  try {
    if (argv[0] !== undefined && GLOBAL_FLAG.test(argv[0])) {
      oci = await import('./oci.js');
      argv = oci.globalFlags(argv);
    }
    const first = argv[0];
    if (first === '--version' || first === '-v' || first === 'version') {
      console.log(`tsbox ${version}`);
      return 0;
    }
    // `tsbox help run` is `tsbox run --help`.
    if (first === 'help' && argv[1] !== undefined) return await cli([argv[1], '--help']);
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      await showTopHelp();
      return first === undefined ? 125 : 0;
    }
    const load = subCommands[first];
    if (load === undefined) {
      throw new TsboxError({ step: 'config', errno: 0, path: first, detail: 'unknown command', hint: `commands: ${Object.keys(subCommands).join(', ')}; see \`tsbox --help\`` });
    }
    // Not citty's runCommand: it would first parse the flags into `args`, which
    // no command reads — each takes its own from rawArgs (run's splitArgs keeps
    // the container's command apart) — at a cost of a few ms on every start.
    const command = await load();
    const args = { _: [] } as unknown as CommandContext['args'];
    await command.run?.({ rawArgs: argv.slice(1), args, cmd: command });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof TsboxError) {
      process.stderr.write(`tsbox: ${err.toLine()}\n`);
      oci?.logLine('error', err.toLine());
      return err.exitCode;
    }
    process.stderr.write(`tsbox: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 125;
  }
}

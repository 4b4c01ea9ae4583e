/** What the commands that act on an existing container share: their flags, parsed the same way as run's. */
import type { ArgsDef, CommandDef } from 'citty';

import type { Container } from '../runtime/container.js';

import { TsboxError } from '../errors.js';
import { splitArgs, type Split } from './args.js';
import { showCommandHelp } from './help.js';

/**
 * Parses `rawArgs` against `def`: the flags, then the positionals. Prints
 * the help and returns null for `--help`; refuses unknown flags by name and
 * a wrong number of positionals.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any command, whatever its args
export async function parse(rawArgs: readonly string[], def: ArgsDef, cmd: CommandDef<any>, name: string, positionals: { min: number; max: number; usage: string }): Promise<Split | null> {
  const split = splitArgs(rawArgs, def, name);
  if (split.help) {
    await showCommandHelp(cmd, name);
    return null;
  }
  const n = split.command.length;
  if (n < positionals.min || n > positionals.max) {
    throw new TsboxError({ step: 'config', errno: 0, path: name, detail: n < positionals.min ? `needs ${positionals.usage}` : `takes ${positionals.usage}, not ${split.command.slice(positionals.max).join(' ')}`, hint: `see \`tsbox ${name} --help\`` });
  }
  return split;
}

/**
 * `-i` with `-t` reads the terminal the container gets from our stdin: a
 * pipe or a file there would never give it an end (a terminal's end of
 * input is a key, ^D), so it is refused, as Docker refuses it.
 */
export function checkInteractiveTerminal(interactive: boolean, tty: boolean): void {
  if (interactive && tty && !process.stdin.isTTY) {
    throw new TsboxError({
      step: 'config',
      errno: 25,
      path: '-it',
      detail: 'the input device is not a TTY: -i with -t needs a terminal on stdin',
      hint: 'leave out -t to pipe into the command (-i alone), or run from a terminal',
    });
  }
}

/**
 * `act` on each container named, as docker rm/stop/kill do: one that fails
 * is reported on its own line and the rest still go; the exit status is the
 * first failure's. Each one done is printed.
 */
export async function eachContainer(refs: readonly string[], act: (ref: string) => unknown): Promise<void> {
  let first: TsboxError | undefined;
  for (const ref of refs) {
    try {
      await act(ref);
      console.log(ref);
    } catch (err) {
      if (!(err instanceof TsboxError)) throw err;
      process.stderr.write(`tsbox: ${err.toLine()}\n`);
      first ??= err;
    }
  }
  if (first) process.exitCode = first.exitCode;
}

/**
 * -t: the container's terminal on ours. With -i and a terminal on stdin, ours
 * goes raw, so every key (^C included) reaches the container, and its size
 * follows ours. Returns the undo.
 */
export function attachTerminal(container: Container, interactive: boolean): () => void {
  container.stdout?.pipe(process.stdout, { end: false });
  const stdin = process.stdin;
  const raw = interactive && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  if (interactive) stdin.pipe(container.stdin!);
  const onResize = () => container.resize(process.stdout.columns, process.stdout.rows);
  if (process.stdout.isTTY) process.stdout.on('resize', onResize);
  return () => {
    process.stdout.off('resize', onResize);
    if (interactive) {
      stdin.unpipe(container.stdin!);
      stdin.pause();
    }
    if (raw) stdin.setRawMode(false);
  };
}

/** Our terminal's size for a container's tty; none when stdout is no terminal or reports 0x0 (a fresh pty): the default 80x24 then. */
export function terminalSize(): { cols: number; rows: number } | undefined {
  const out = process.stdout;
  return out.isTTY && out.columns > 0 && out.rows > 0 ? { cols: out.columns, rows: out.rows } : undefined;
}

/** runc's --preserve-fds N: a count, 0 when not given. */
export function preservedFds(values: ReadonlyMap<string, unknown>): number {
  const n = values.get('preserveFds') as string | undefined;
  if (n === undefined) return 0;
  if (!/^\d+$/.test(n)) throw new TsboxError({ step: 'config', errno: 22, path: '--preserve-fds', detail: `"${n}" is not a number`, hint: null });
  return Number(n);
}

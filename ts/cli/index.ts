/**
 * The tsbox CLI. Commands are thin: they parse flags into the options the API
 * takes and call it. Help is handled here rather than by citty's runMain, so
 * that `-h` after the container's command belongs to the command.
 */
import { readFileSync } from 'node:fs';

import { defineCommand, runCommand, showUsage, type CommandDef } from 'citty';

import { TsboxError } from '../errors.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const subCommands: Record<string, () => Promise<CommandDef>> = {
  run: () => import('./run.js').then((m) => m.default as CommandDef),
  gc: () => import('./gc.js').then((m) => m.default as CommandDef),
};

export const main = defineCommand({
  meta: { name: 'tsbox', version: pkg.version, description: 'Linux containers for Node.js: real namespaces, id maps, pivot_root, capabilities, no daemon' },
  subCommands,
});

export async function cli(argv: string[]): Promise<number> {
  try {
    const first = argv[0];
    if (first === '--version' || first === '-v' || first === 'version') {
      console.log(`tsbox ${pkg.version}`);
      return 0;
    }
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      await showUsage(main);
      console.log(`Example:\n  tsbox run -- sh -c 'echo $$; id -u; hostname'`);
      return first === undefined ? 125 : 0;
    }
    const load = subCommands[first];
    if (load === undefined) {
      throw new TsboxError({ step: 'config', errno: 0, path: first, detail: 'unknown command', hint: `commands: ${Object.keys(subCommands).join(', ')}; see \`tsbox --help\`` });
    }
    await runCommand(await load(), { rawArgs: argv.slice(1) });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof TsboxError) {
      process.stderr.write(`tsbox: ${err.toLine()}\n`);
      return err.exitCode;
    }
    process.stderr.write(`tsbox: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 125;
  }
}

/** `tsbox ps`: the containers of this user, as `docker ps` lists them; `tsbox ps ID`: a container's processes, as runc's. */
import { defineCommand } from 'citty';

import { list } from '../runtime/lifecycle.js';
import type { ContainerState } from '../runtime/state.js';
import { TsboxError } from '../errors.js';
import { parse } from './common.js';

const args = {
  all: { type: 'boolean', alias: 'a', description: 'Show stopped containers too' },
  format: { type: 'string', valueHint: 'table|json', description: "Output format (default table); with an id, json is its processes' pids" },
  quiet: { type: 'boolean', alias: 'q', description: 'Only the ids' },
} as const;

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function status(s: ContainerState): string {
  if (s.status === 'stopped') return `Exited (${s.exitCode ?? '?'})`;
  return s.status === 'running' ? 'Up' : s.status[0]!.toUpperCase() + s.status.slice(1);
}

const command = defineCommand({
  meta: { name: 'tsbox ps', description: 'List containers: running and created ones, stopped ones too with -a' },
  args,
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, args, cmd, 'ps', { min: 0, max: Infinity, usage: 'no arguments, or a container of `tsbox create` and ps(1) options' });
    if (!split) return;
    const format = (split.values.get('format') as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json') throw new TsboxError({ step: 'config', errno: 0, path: '--format', detail: `unknown format "${format}"`, hint: 'table or json' });
    if (split.command.length > 0) {
      // runc's form: the processes of one container.
      const { ociProcesses } = await import('../oci/runtime.js');
      const [id, ...psArgs] = split.command;
      process.stdout.write(ociProcesses(id, format, psArgs));
      return;
    }
    const states = list({ all: split.values.get('all') === true });
    if (split.values.get('quiet') === true) {
      for (const s of states) console.log(s.id.slice(0, 12));
      return;
    }
    if (format === 'json') {
      console.log(JSON.stringify(states, null, 2));
      return;
    }
    const rows = [['CONTAINER ID', 'NAME', 'COMMAND', 'CREATED', 'STATUS', 'PID']];
    for (const s of states) {
      // None: a pool's sandbox, built and waiting for its process (its
      // monitor writes the command when it runs), or an OCI container created
      // without a process.
      const cmdline = s.command.length > 0 ? s.command.join(' ') : s.oci ? '(no process)' : '(pooled, no process yet)';
      rows.push([s.id.slice(0, 12), s.name ?? '', cmdline.length > 30 ? `${cmdline.slice(0, 29)}…` : cmdline, ago(s.created), status(s), s.status === 'stopped' ? '' : String(s.pid)]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd());
  },
});

export default command;

/** `tsbox port NAME [PORT[/PROTO]]`: a container's published ports, as `docker port` prints them. */
import { defineCommand } from 'citty';

import type { PortMapping } from '../config/network.js';
import { TsboxError } from '../errors.js';
import { open } from '../runtime/lifecycle.js';
import { parse } from './common.js';

/** One published port as Docker prints it: `8000/tcp -> 0.0.0.0:49153` (every address is 0.0.0.0: the bridge's ports are IPv4). */
export function portLine(p: PortMapping): string {
  const host = p.hostIp === '' ? '0.0.0.0' : p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp;
  return `${p.containerPort}/${p.protocol} -> ${host}:${p.hostPort}`;
}

const command = defineCommand({
  meta: { name: 'tsbox port', description: "List a container's published ports (-p, and -P's choices): CONTAINERPORT/PROTO -> HOSTIP:HOSTPORT, or the host addresses of one port" },
  args: {},
  async run({ rawArgs, cmd }) {
    const split = await parse(rawArgs, {}, cmd, 'port', { min: 1, max: 2, usage: 'a container, and optionally one of its ports (PORT[/tcp|udp])' });
    if (!split) return;
    const [ref, which] = split.command as [string, string | undefined];
    const ports = open(ref).state().network?.ports ?? [];
    if (which === undefined) {
      for (const p of ports) console.log(portLine(p));
      return;
    }
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(which);
    if (!m) throw new TsboxError({ step: 'config', errno: 0, path: which, detail: 'not PORT[/tcp|udp]', hint: 'tsbox port NAME 8000/tcp' });
    const found = ports.filter((p) => p.containerPort === Number(m[1]) && p.protocol === (m[2] ?? 'tcp'));
    if (found.length === 0) {
      throw new TsboxError({ step: 'port', errno: 2, path: `${m[1]}/${m[2] ?? 'tcp'}`, detail: `container ${ref} does not publish that port`, hint: `\`tsbox port ${ref}\` lists what it publishes` });
    }
    for (const p of found) console.log(portLine(p).split(' -> ')[1]);
  },
});

export default command;

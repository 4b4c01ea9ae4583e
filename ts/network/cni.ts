/**
 * The CNI plugins (Debian's containernetworking-plugins), run as the CNI
 * spec says: one executable per plugin of a network configuration list, the
 * operation and the container in `CNI_*` variables, the plugin's own config
 * on stdin (with the list's name and version, the previous plugin's result
 * as `prevResult`, and `runtimeConfig` for the capabilities it declares), a
 * result or an error as JSON on stdout. ADD in the list's order, DEL in the
 * reverse, each DEL with the result the ADDs ended with.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { TsboxError } from '../errors.js';
import type { PortMapping } from '../config/network.js';

/** Where distributions install the plugins: Debian's package, then the upstream default. */
const CNI_DIRS = ['/usr/lib/cni', '/opt/cni/bin', '/usr/libexec/cni'];

const CNI_VERSION = '1.0.0';

/** One plugin's entry in a configuration list. */
export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
}

/** tsbox's bridge network: its name, bridge and subnet (beside podman's 10.88.0.0/16, not on it). */
export const BRIDGE = { name: 'tsbox', bridge: 'tsbox0', subnet: '10.89.0.0/16', gateway: '10.89.0.1' } as const;

/**
 * The bridge network's configuration list: a veth from the container to
 * the bridge `tsbox0`, an address from host-local's leases in `ipamDir`,
 * NAT to the host's uplink (ipMasq), published ports (portmap), the FORWARD
 * rules that let its traffic through a host whose policy drops it
 * (firewall), and sysctls (tuning).
 */
export function bridgeConfList(ipamDir: string, opts: { ipv6Off?: boolean } = {}): ConfList {
  return {
    cniVersion: CNI_VERSION,
    name: BRIDGE.name,
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: BRIDGE.subnet, gateway: BRIDGE.gateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: ipamDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      { type: 'firewall', backend: 'iptables' },
      // An allowlisted container has no IPv6 at all: its iptables rules
      // are IPv4's, and a link-local address would reach the host around them.
      opts.ipv6Off ? { type: 'tuning', sysctl: { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' } } : { type: 'tuning' },
    ],
  };
}

/** The plugins `list` runs (its plugins' types and the IPAM's), each an executable. */
export function pluginTypes(list: ConfList): string[] {
  const types = new Set<string>();
  for (const p of list.plugins) {
    types.add(p.type);
    const ipam = p.ipam as { type?: string } | undefined;
    if (ipam?.type) types.add(ipam.type);
  }
  return [...types];
}

/**
 * The CNI_PATH holding every plugin `list` needs. A missing one is a
 * one-line error naming the package that has it.
 */
export function cniPath(list: ConfList, dirs: readonly string[] = CNI_DIRS, exists: (p: string) => boolean = existsSync): string {
  const found = dirs.filter((d) => exists(d));
  for (const type of pluginTypes(list)) {
    if (!found.some((d) => exists(join(d, type)))) {
      throw new TsboxError({
        step: 'network',
        errno: 2,
        path: type,
        detail: `the CNI plugin "${type}" is not installed (looked in ${dirs.join(', ')})`,
        hint: 'install the package containernetworking-plugins (apt-get install containernetworking-plugins)',
      });
    }
  }
  return found.join(':');
}

/** The container a plugin acts on. */
export interface CniTarget {
  containerId: string;
  /** Its network namespace (/proc/PID/ns/net); may be gone by DEL. */
  netns: string;
  ifname: string;
  cniPath: string;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** What a plugin reads on stdin for `command`. */
export function pluginInput(list: ConfList, plugin: PluginConf, prevResult: unknown, portMappings: readonly PortMapping[]): Record<string, unknown> {
  const input: Record<string, unknown> = { cniVersion: list.cniVersion, name: list.name, ...plugin };
  if (prevResult !== undefined && prevResult !== null) input.prevResult = prevResult;
  if (plugin.capabilities?.portMappings) {
    input.runtimeConfig = { portMappings: portMappings.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol, hostIP: p.hostIp })) };
  }
  return input;
}

function env(command: CniCommand, t: CniTarget): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: t.containerId,
    CNI_NETNS: t.netns,
    CNI_IFNAME: t.ifname,
    CNI_PATH: t.cniPath,
  };
}

/** A plugin's failure: the CNI error it printed (`{ code, msg, details }`), or how it ended. */
function pluginError(command: CniCommand, type: string, dir: string, stdout: string, stderr: string, status: number | null): TsboxError {
  let msg = stderr.trim().split('\n').pop() || `exited with status ${String(status)}`;
  let code = 0;
  try {
    const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
    if (e.msg) msg = e.details ? `${e.msg}: ${e.details}` : e.msg;
    code = e.code ?? 0;
  } catch {
    // Not JSON: stderr's last line says it.
  }
  return new TsboxError({
    step: 'network',
    errno: 0,
    path: join(dir, type),
    detail: `CNI ${command} of the ${type} plugin failed${code ? ` (CNI error ${code})` : ''}: ${msg}`,
    hint: type === 'portmap' ? 'a published host port may be taken, or iptables unusable here' : 'run with --trace; `tsbox gc` removes what a failed setup left',
  });
}

function pluginDir(type: string, cniPathValue: string): string {
  return cniPathValue.split(':').find((d) => existsSync(join(d, type))) ?? cniPathValue.split(':')[0]!;
}

/** Runs one plugin; resolves to its result (ADD) or null. */
export function runPlugin(command: CniCommand, list: ConfList, plugin: PluginConf, t: CniTarget, prevResult: unknown, ports: readonly PortMapping[]): Promise<unknown> {
  const dir = pluginDir(plugin.type, t.cniPath);
  const input = JSON.stringify(pluginInput(list, plugin, prevResult, ports));
  return new Promise((resolve, reject) => {
    const child = spawn(join(dir, plugin.type), [], { env: env(command, t), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new TsboxError({ step: 'network', errno: Math.abs((e as NodeJS.ErrnoException).errno ?? 0), path: join(dir, plugin.type), detail: `run the CNI plugin: ${e.message}`, hint: 'install the package containernetworking-plugins' })));
    child.on('close', (status) => {
      const stdout = Buffer.concat(out).toString();
      if (status !== 0) return reject(pluginError(command, plugin.type, dir, stdout, Buffer.concat(err).toString(), status));
      try {
        resolve(command === 'ADD' ? JSON.parse(stdout) : null);
      } catch {
        reject(pluginError(command, plugin.type, dir, stdout, 'printed no JSON result', status));
      }
    });
    child.stdin.end(input);
  });
}

/** An ADD that failed: the plugin's error, and whether what the others added could all be deleted. */
export class AddFailed extends Error {
  constructor(
    readonly error: unknown,
    readonly rollback: TsboxError[],
  ) {
    super((error as Error).message);
  }
}

/**
 * ADD of every plugin of `list`, in order; the last result. When one
 * fails, what the others added is deleted (the spec's rule), and an
 * AddFailed is thrown with the plugin's error and the DEL failures (none
 * when nothing is left).
 */
export async function add(list: ConfList, t: CniTarget, ports: readonly PortMapping[], trace?: (l: string) => void): Promise<unknown> {
  let result: unknown = undefined;
  for (const plugin of list.plugins) {
    try {
      result = await runPlugin('ADD', list, plugin, t, result, ports);
      trace?.(`network: CNI ADD ${plugin.type}`);
    } catch (err) {
      throw new AddFailed(err, del(list, t, result, ports));
    }
  }
  return result;
}

/**
 * DEL of every plugin of `list`, in reverse, with the result ADD ended
 * with (null when it never finished: the plugins then delete what they
 * find by the container's id). Synchronous: it runs on every exit path,
 * including one that cannot wait. Every plugin is asked even when one
 * fails; the failures are returned.
 */
export function del(list: ConfList, t: CniTarget, prevResult: unknown, ports: readonly PortMapping[]): TsboxError[] {
  const failures: TsboxError[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    const dir = pluginDir(plugin.type, t.cniPath);
    const r = spawnSync(join(dir, plugin.type), [], { env: env('DEL', t), input: JSON.stringify(pluginInput(list, plugin, prevResult, ports)), encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) failures.push(pluginError('DEL', plugin.type, dir, r.stdout ?? '', r.stderr ?? r.error?.message ?? '', r.status));
  }
  return failures;
}

/**
 * A container's network beyond loopback, loaded only for a container that
 * asks for one (launch imports it lazily): phase `network`'s decisions,
 * taken before anything exists, and its work once the container is cloned.
 *
 * - `host`, `ns:PATH`: nothing here beyond the plan (no net namespace of
 *   its own; the helper joins the path).
 * - `container:NAME`: the other container's namespace, found through its
 *   state and held open by this process until the clone, so that what is
 *   joined is that container's even if its pid is reused meanwhile.
 * - `bridge`: as root ts/network/bridge.ts (the CNI plugins), otherwise
 *   ts/network/pasta.ts; an egress allowlist as root ts/network/egress.ts
 *   (rules on the host), otherwise ts/network/egress-ns.ts (rules in the
 *   container's namespace).
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

import type { AllowRule, ExposedPort, NetworkMode, PortMapping } from '../config/network.js';
import type { SandboxPlan } from '../generated/wire.js';
import { fromSystemError, TsboxError } from '../errors.js';
import { processStart } from '../proc.js';
import { findContainer, monitorAlive } from '../runtime/state.js';
import { attachBridge, checkBridge, hostsInState, portInUse, portTaken, type NetworkInfo } from './bridge.js';
import { BRIDGE } from './cni.js';
import { checkBridgeFilter, removeEgress, startEgress, upstreamOf } from './egress.js';
import { attachPasta, findPasta } from './pasta.js';
import { publishAllPorts } from './ports.js';
import { Refusals } from './refused.js';

export type { NetworkInfo } from './bridge.js';
export { gcNetworks } from './bridge.js';

export interface PreparedNetwork {
  /** The path the helper joins (`SandboxPlan.join`), when the container joins a namespace. */
  netnsPath: string | null;
  /** Once the helper has cloned: what held the joined namespace can go. */
  cloned: () => void;
  /**
   * Phase `network`, for a container with a namespace of its own to set
   * up: returns its interfaces and the undo (DEL). Null when there is
   * nothing to do in this phase.
   */
  attach: ((id: string, pid: number, monitorPid: number, keep: boolean, trace?: (l: string) => void) => Promise<{ info: NetworkInfo; detach: () => void; refusals?: Refusals }>) | null;
  /** What the container's result says when there is no phase to run. */
  info: NetworkInfo | null;
  /** Once the plan is built, before it is sent: what of it this network changes (a bridged container's /etc/hosts). */
  plan: (sandbox: SandboxPlan, dir: string) => void;
}

const nothing = (): void => {};

/** /etc/resolv.conf naming only the allowlist's resolver (the bridge's gateway, or pasta's forward to it), with the search domains and options kept. */
function resolverOnly(sandbox: SandboxPlan, resolver: string): void {
  const m = sandbox.mounts.find((x) => x.target === '/etc/resolv.conf');
  if (m?.type !== 'file') return;
  m.contents = `${m.contents
    .split('\n')
    .filter((l) => l !== '' && !/^\s*nameserver\s/.test(l))
    .map((l) => `${l}\n`)
    .join('')}nameserver ${resolver}\n`;
}

function joinedInfo(mode: string): NetworkInfo {
  return { mode, interfaces: [], gateway: null, hostInterface: null, bridge: null, ports: [] };
}

/** The namespace of a running tsbox container `name`, held open (a descriptor of this process). */
function containerNetns(name: string): { path: string; close: () => void } {
  const { state } = findContainer(name);
  const refuse = (detail: string) =>
    new TsboxError({ step: 'network', errno: 3, path: `container:${name}`, detail, hint: '`tsbox ps` lists the running containers; start it first' });
  if (state.status === 'stopped' || state.pid <= 0 || !monitorAlive(state)) throw refuse(`container ${name} is not running (${state.status})`);
  let fd: number;
  try {
    fd = openSync(`/proc/${state.pid}/ns/net`, 'r');
  } catch {
    throw refuse(`container ${name} is gone`);
  }
  // Opened, then checked: if its pid had been reused before the open, its
  // state or monitor says it ended.
  let again;
  try {
    again = findContainer(name).state;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (again.pid !== state.pid || again.id !== state.id || !monitorAlive(state) || again.status === 'stopped') {
    closeSync(fd);
    throw refuse(`container ${name} ended while it was being joined`);
  }
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  return { path: `/proc/${process.pid}/fd/${fd}`, close };
}

/**
 * An ordinary user's detached container's allowlist: its keeper (mode
 * `ns`), handed the namespaces of the container's process `pid`, opened
 * here while it waits before `go` (its pid cannot have been reused: it is
 * this launch's, not yet let go). Returns the resolver's port and the undo
 * (a launch that fails after it was ready).
 */
/** What a keeper of either mode is started with: container `id`'s, whose state directory is `dir` (its reports go there). */
function keeperCommon(id: string, monitorPid: number, dir: string | null, rules: AllowRule[], upstream: string | null, trace?: (l: string) => void) {
  if (!dir) throw new TsboxError({ step: 'network', errno: 0, path: 'allow', detail: "a detached container's allowlist has no state directory to report in", hint: 'this is a bug in tsbox' });
  return { id, rules, upstream, dir, monitor: { pid: monitorPid, start: processStart(monitorPid) ?? '' }, control: join(dir, 'control.sock'), trace: trace !== undefined };
}

async function startNsKeeper(id: string, pid: number, monitorPid: number, dir: string | null, rules: AllowRule[], upstream: string | null, refusals: Refusals, trace?: (l: string) => void): Promise<{ port: number; close: () => void }> {
  const common = keeperCommon(id, monitorPid, dir, rules, upstream, trace);
  const [{ startKeeper }, { pastaDir }] = await Promise.all([import('./keeper.js'), import('./pasta.js')]);
  const held: number[] = [];
  let kept;
  try {
    try {
      for (const ns of ['user', 'net']) held.push(openSync(`/proc/${pid}/ns/${ns}`, 'r'));
    } catch (err) {
      throw new TsboxError({ step: 'network', errno: Math.abs((err as NodeJS.ErrnoException).errno ?? 3), path: `/proc/${pid}/ns`, detail: "the container's namespaces could not be opened for its allowlist", hint: 'the container ended while its network was set up' });
    }
    kept = await startKeeper({ mode: 'ns', records: pastaDir(), ...common }, trace, { user: held[0]!, net: held[1]! }).catch((err: unknown) => {
      throw err instanceof TsboxError ? err : fromSystemError('network', err, "start the allowlist's keeper of the detached container", `its log is ${join(common.dir, 'keeper.log')}`);
    });
  } finally {
    // The keeper has its own now.
    held.forEach((fd) => closeSync(fd));
  }
  refusals.off = kept.off;
  const stop = kept.stop;
  return { port: kept.port!, close: () => void stop() };
}

/**
 * Phase `network`, decided at `plan`: checks and looks-ups that must come
 * before anything is created. `publishAll`: the exposed ports to publish on
 * host ports chosen now (`-P`), beside `ports` (ts/network/ports.ts).
 */
export async function prepareNetwork(network: NetworkMode, ports: PortMapping[], egress: { allow: AllowRule[]; dns: string[] } = { allow: [], dns: [] }, publishAll: ExposedPort[] | null = null): Promise<PreparedNetwork> {
  switch (network.mode) {
    case 'none':
    case 'host':
      return { netnsPath: null, cloned: nothing, attach: null, info: joinedInfo(network.mode), plan: nothing };
    case 'ns':
      return { netnsPath: network.path, cloned: nothing, attach: null, info: joinedInfo(`ns:${network.path}`), plan: nothing };
    case 'container': {
      const held = containerNetns(network.name);
      return { netnsPath: held.path, cloned: held.close, attach: null, info: joinedInfo(`container:${network.name}`), plan: nothing };
    }
    case 'bridge': {
      // The bridge's addresses are IPv4 only: a port published on an IPv6
      // address of the host would answer nothing.
      const v6 = ports.find((p) => p.hostIp.includes(':'));
      if (v6) {
        throw new TsboxError({
          step: 'network',
          errno: 22,
          path: `[${v6.hostIp}]:${v6.hostPort}:${v6.containerPort}`,
          detail: 'a port cannot be published on an IPv6 address of the host yet: the container has only an IPv4 address',
          hint: 'publish on an IPv4 address, or leave the address out (every IPv4 address of the host)',
        });
      }
      // -P's ports, chosen now: from here on they are published as -p's are. As
      // root, a DNAT rule holds no socket: another container's ports are passed over.
      if (publishAll) ports = [...ports, ...(await publishAllPorts(ports, publishAll, process.getuid?.() === 0 ? (p) => portTaken('', [p]) !== null : undefined))];
      // An ordinary user's: pasta (loaded only then).
      if (process.getuid?.() !== 0) {
        const pasta = findPasta();
        if (egress.allow.length === 0) {
          return {
            netnsPath: null,
            cloned: nothing,
            attach: (id, pid, monitorPid, _keep, trace) => attachPasta(id, pid, monitorPid, ports, pasta, trace),
            info: null,
            plan: nothing,
          };
        }
        // The allowlist in the container's namespace (ts/network/egress-ns.ts),
        // loaded only then; set up before pasta, which forwards its DNS to
        // the resolver. A detached container's is its keeper's
        // (ts/network/keeper.ts, mode `ns`), which outlives this process as
        // the container does.
        const { NS_RESOLVER, startNsEgress } = await import('./egress-ns.js');
        let nsStateDir: string | null = null;
        return {
          netnsPath: null,
          cloned: nothing,
          attach: async (id, pid, monitorPid, keep, trace) => {
            const refusals = new Refusals();
            const allowlist = keep ? await startNsEgress(pid, egress.allow, upstreamOf(egress.dns), trace, refusals) : await startNsKeeper(id, pid, monitorPid, nsStateDir, egress.allow, upstreamOf(egress.dns), refusals, trace);
            let attached;
            try {
              attached = await attachPasta(id, pid, monitorPid, ports, pasta, trace, allowlist.port);
            } catch (err) {
              allowlist.close();
              throw err;
            }
            return {
              info: { ...attached.info, allow: egress.allow },
              refusals,
              // pasta first: while it runs it forwards the container's DNS
              // to the resolver's port, which must not be free for another
              // process of the host to take meanwhile.
              detach: () => {
                try {
                  attached.detach();
                } finally {
                  allowlist.close();
                }
              },
            };
          },
          info: null,
          // Names are the resolver's to answer.
          plan: (sandbox, dir) => {
            nsStateDir = dir;
            resolverOnly(sandbox, NS_RESOLVER);
          },
        };
      }
      if (egress.allow.length > 0) checkBridgeFilter();
      const prepared = checkBridge({ ipv6Off: egress.allow.length > 0 });
      const inUse = await portInUse(ports);
      if (inUse) throw inUse;
      let hosts: ((address: string) => void) | null = null;
      let stateDir: string | null = null;
      return {
        netnsPath: null,
        cloned: nothing,
        attach: async (id, pid, monitorPid, keep, trace) => {
          const attached = await attachBridge(id, pid, monitorPid, ports, prepared, keep, trace);
          const address = attached.info.interfaces[0]?.addresses[0]?.split('/')[0];
          if (egress.allow.length === 0) {
            try {
              if (hosts && address) hosts(address);
            } catch (err) {
              // The network was made: it goes with the failed launch.
              try {
                attached.detach();
              } catch {
                // DEL's failure leaves the record for gc; the launch's own error is what to report.
              }
              throw err;
            }
            return attached;
          }
          // The allowlist (ts/network/egress.ts); undone before DEL. A
          // detached container's is its keeper's (ts/network/keeper.ts),
          // which outlives this process as the container does.
          let allowlist: { close: () => void };
          const refusals = new Refusals();
          try {
            if (hosts && address) hosts(address);
            if (!address) throw new TsboxError({ step: 'network', errno: 0, path: 'allow', detail: 'the bridge gave the container no IPv4 address to hold to the allowlist', hint: 'run with --trace; this is a bug in tsbox or in the CNI plugins' });
            const veth = attached.info.hostInterface;
            if (!veth) throw new TsboxError({ step: 'network', errno: 0, path: 'allow', detail: "the bridge named no host end of the container's veth to hold to the allowlist", hint: 'run with --trace; this is a bug in tsbox or in the CNI plugins' });
            if (keep) allowlist = await startEgress(id, address, veth, egress.allow, upstreamOf(egress.dns), trace, refusals);
            else {
              const common = keeperCommon(id, monitorPid, stateDir, egress.allow, upstreamOf(egress.dns), trace);
              const { startKeeper } = await import('./keeper.js');
              const kept = await startKeeper({ mode: 'bridge', ip: address, veth, ...common }, trace);
              refusals.off = kept.off;
              allowlist = {
                close: () => {
                  if (!kept.stop()) throw new TsboxError({ step: 'network', errno: 0, path: `tsbox:${id}`, detail: "the allowlist's chain and rules could not be removed", hint: 'tsbox gc tries again' });
                },
              };
            }
          } catch (err) {
            // What of its rules is left keeps the address (see detach below).
            try {
              if (removeEgress(id)) attached.detach();
              else attached.abandon();
            } catch {
              // DEL's failure leaves the record for gc; the launch's own error is what to report.
            }
            throw err;
          }
          return {
            info: { ...attached.info, allow: egress.allow },
            // (A detached container's are its keeper's to count, in its
            // state directory: only why they are not reported is here.)
            refusals,
            detach: () => {
              // The allowlist's rules hold the container's address: while
              // any is left, the address (its lease) and the record stay,
              // for gc to try both again, or the next container given that
              // address would be held by this one's rules.
              try {
                allowlist.close();
              } catch (err) {
                attached.abandon();
                throw err;
              }
              attached.detach();
            },
          };
        },
        info: null,
        plan: (sandbox, dir) => {
          stateDir = dir;
          hosts = hostsInState(sandbox, dir);
          // With an allowlist, names are the container's resolver's to answer.
          if (egress.allow.length > 0) resolverOnly(sandbox, BRIDGE.gateway);
        },
      };
    }
  }
}

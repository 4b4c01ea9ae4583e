/**
 * Networking (issue 17), as root, seen from inside the containers: `none`,
 * `host`, `bridge` through the CNI plugins, published ports, joining a
 * namespace or another container's, and that nothing is left on the host
 * (veth, IPAM lease, iptables rule, record) on any way out.
 *
 * All traffic stays on this machine: a fake "internet" is a network
 * namespace this suite makes (tsbox-test-<pid>), with a veth to the host, an
 * HTTP server on two documentation addresses (198.51.100.2, 203.0.113.2: the
 * allowlist refuses names that lead to private networks), a DNS server (dnsmasq) for
 * a.test and b.test, and a route to them from the host; it goes in afterAll, with whatever of the bridge and the CNI
 * plugins' shared chains did not exist before, and net.ipv4.ip_forward
 * (which the bridge plugin turns on) is put back as it was.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';

import { createPool, open, spawn as spawnContainer } from '../../ts/index.js';
import { alive, BIN, cli, eventually, REPO, runCommand } from '../support/tsbox.js';
import { cniChains, removeCniChains } from '../support/host.js';
import { attachBridge, GUARD_RULES } from '../../ts/network/bridge.js';
import { NFLOG_COUNT, NFLOG_FIRST } from '../../ts/network/egress.js';
import { loadNative } from '../../ts/native.js';
import { MAX_DESTINATIONS, type RefusedConnection, type RefusedSummary } from '../../ts/network/refused.js';

const rootfs = inject('rootfs');

const NS = `tsbox-test-${process.pid}`;
const HOST_IF = `tsbt${process.pid % 100000}h`;
const NS_IF = `tsbt${process.pid % 100000}n`;
/** The fake internet's two addresses, on its veth and on its loopback. */
const SERVER = '198.51.100.2';
const SERVER2 = '203.0.113.2';
const NETWORK_DIR = '/run/tsbox/network';
const BRIDGE_GW = '10.89.0.1';
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function iptablesSave(): string {
  return sh('iptables-save', []);
}


/** A TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** What the host keeps of bridged container `id`: its record, rules, lease. */
function leftovers(id: string): string[] {
  const found: string[] = [];
  if (existsSync(join(NETWORK_DIR, `${id}.json`))) found.push('record');
  if (iptablesSave().includes(id)) found.push('iptables rule');
  if (iptablesSave().includes(`TSBOX-${id.slice(0, 12)}`)) found.push('allowlist chain');
  // The firewall plugin's rules name the container's address, not its id:
  // one for an address no live record holds is a leftover.
  const live = new Set<string>();
  for (const n of existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((f) => f.endsWith('.json')) : []) {
    try {
      const r = JSON.parse(readFileSync(join(NETWORK_DIR, n), 'utf8')) as { result: { ips?: { address: string }[] } | null };
      for (const ip of r.result?.ips ?? []) live.add(ip.address.split('/')[0]!);
    } catch {
      // Being written.
    }
  }
  for (const m of iptablesSave().matchAll(/^-A CNI-(?:FORWARD|ADMIN) .*?-[sd] (10\.89\.\d+\.\d+)\/32/gm)) {
    if (!live.has(m[1]!)) found.push(`firewall rule for ${m[1]!}`);
  }
  if (sh('ip6tables-save', []).includes(id)) found.push('ip6tables rule');
  const leases = join(NETWORK_DIR, 'ipam', 'tsbox');
  for (const f of existsSync(leases) ? readdirSync(leases) : []) {
    if (/^\d/.test(f) && !f.startsWith('last_reserved') && readFileSync(join(leases, f), 'utf8').includes(id)) found.push(`lease ${f}`);
  }
  return found;
}

/** The NFLOG groups of tsbox's range bound now (the kernel's list of them). */
function tsboxNflogGroups(): number[] {
  return readFileSync('/proc/net/netfilter/nfnetlink_log', 'utf8')
    .split('\n')
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((g) => g >= NFLOG_FIRST && g < NFLOG_FIRST + NFLOG_COUNT);
}

/** This process's NETLINK_NETFILTER sockets (by inode). */
function ownNetfilterSockets(): string[] {
  const mine = new Set(readdirSync('/proc/self/fd').map((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    } catch {
      return undefined;
    }
  }));
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  return readFileSync('/proc/net/netlink', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[1] === '12' && mine.has(f[9])).map((f) => f[9]!).sort();
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', name]).status === 0;
}

let httpd: ChildProcess | undefined;
let dnsmasq: ChildProcess | undefined;
let www: string;
let forwardBefore: string;
let chainsBefore: Set<string>;
let bridgeBefore: boolean;

beforeAll(() => {
  forwardBefore = readFileSync(IP_FORWARD, 'utf8').trim();
  chainsBefore = cniChains();
  bridgeBefore = linkExists('tsbox0');
  www = mkdtempSync(join(tmpdir(), 'tsbox-net-www-'));
  writeFileSync(join(www, 'index.html'), 'fake internet\n');
  sh('ip', ['netns', 'add', NS]);
  sh('ip', ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF]);
  sh('ip', ['link', 'set', NS_IF, 'netns', NS]);
  sh('ip', ['addr', 'add', '198.51.100.1/24', 'dev', HOST_IF]);
  sh('ip', ['link', 'set', HOST_IF, 'up']);
  sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', NS, 'addr', 'add', `${SERVER}/24`, 'dev', NS_IF]);
  sh('ip', ['-n', NS, 'addr', 'add', `${SERVER2}/32`, 'dev', 'lo']);
  sh('ip', ['-n', NS, 'link', 'set', NS_IF, 'up']);
  sh('ip', ['-n', NS, 'route', 'add', 'default', 'via', '198.51.100.1']);
  sh('ip', ['route', 'add', '203.0.113.0/24', 'via', SERVER]);
  httpd = spawn('ip', ['netns', 'exec', NS, '/bin/busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' });
  // The fake internet's DNS: a.test and b.test, its two addresses, gw.test, the bridge's gateway (the host), lan.test, a private address (a rebinding name), and no other name.
  dnsmasq = spawn('ip', ['netns', 'exec', NS, 'dnsmasq', '-k', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', `--listen-address=${SERVER}`, '--bind-interfaces', `--address=/a.test/${SERVER}`, `--address=/b.test/${SERVER2}`, `--address=/gw.test/${BRIDGE_GW}`, '--address=/lan.test/192.168.77.7', '--user=root', '--pid-file='], { stdio: 'ignore' });
});

afterAll(() => {
  if (httpd?.pid) process.kill(httpd.pid, 'SIGKILL');
  if (dnsmasq?.pid) process.kill(dnsmasq.pid, 'SIGKILL');
  spawnSync('ip', ['route', 'del', '203.0.113.0/24']);
  spawnSync('ip', ['link', 'del', HOST_IF]);
  spawnSync('ip', ['netns', 'del', NS]);
  rmSync(www, { recursive: true, force: true });
  // What the bridge network shares between containers, when this suite made it and no container is left on it.
  const records = existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((n) => n.endsWith('.json')) : [];
  if (records.length === 0) {
    if (!bridgeBefore) {
      spawnSync('ip', ['link', 'del', 'tsbox0']);
      // The rules that go with it (ts/network/bridge.ts, GUARD_RULES).
      for (const { cmd, table, chain, rule } of GUARD_RULES) while (spawnSync(cmd, ['-w', '-t', table, '-D', chain, ...rule]).status === 0);
    }
    removeCniChains(chainsBefore);
  }
  writeFileSync(IP_FORWARD, `${forwardBefore}\n`);
});

/** The first line a stream gives. */
function firstLine(r: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    r.on('data', (b: Buffer) => {
      buf += b.toString();
      if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
    });
    r.on('end', () => reject(new Error(`no line, only ${JSON.stringify(buf)}`)));
  });
}

// (busybox 1.35's wget -T crashes: a timeout(1) bounds it instead.)
const wget = (url: string) => ['timeout', '5', 'wget', '-q', '-O', '-', url];

describe('network modes', () => {
  it('none (the default): only lo, which is up, and nothing outside is reached', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--', 'sh', '-c', `ip -o link; ${wget(`http://${SERVER}/`).join(' ')}; echo wget=$?`]);
    expect(r.code).toBe(0);
    const links = r.stdout.split('\n').filter((l) => /^\d+:/.test(l));
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/^1: lo: <LOOPBACK,UP/);
    expect(r.stdout).not.toContain('fake internet');
    expect(r.stdout).toMatch(/wget=[1-9]/);
  });

  it("bridge: an address on tsbox0, a default route, and the fake internet's two addresses reached", async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--', 'sh', '-c', `ip -o -4 addr show eth0; ip route; ${wget(`http://${SERVER}/`).join(' ')} && ${wget(`http://${SERVER2}/`).join(' ')}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/eth0\s+inet 10\.89\.\d+\.\d+\/16/);
    expect(r.stdout).toContain('default via 10.89.0.1 dev eth0');
    expect(r.stdout.match(/fake internet/g)).toHaveLength(2);
  });

  it('a warm pool on bridge: each sandbox gets its own address at build, each call reaches the fake internet, and close() deletes every network', async () => {
    const ids: string[] = [];
    {
      await using pool = createPool({ rootfs, network: 'bridge', size: 2 });
      for (let i = 0; i < 300 && pool.stats().ready < 2; i++) await new Promise((r) => setTimeout(r, 50));
      const calls = await Promise.all([0, 1, 2].map(() => pool.run(['sh', '-c', `ip -o -4 addr show eth0; ${wget(`http://${SERVER}/`).join(' ')}`])));
      for (const r of calls) {
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout).toContain('fake internet');
        expect(r.network?.interfaces?.length ?? 0).toBeGreaterThan(0);
        ids.push(r.id);
      }
      const addresses = calls.map((r) => /inet (10\.89\.\d+\.\d+)/.exec(r.stdout)?.[1]);
      expect(new Set(addresses).size).toBe(3);
      // A call may not pick another network: it shapes the sandbox.
      await expect(pool.run(['true'], { network: 'none' } as never)).rejects.toMatchObject({ step: 'config', path: 'network' });
      expect(() => createPool({ rootfs, network: 'bridge', publish: ['18099:80'] })).toThrow(/publish.*same host ports/);
    }
    for (const id of ids) expect(leftovers(id), id).toEqual([]);
    expect(existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((f) => f.endsWith('.json')) : []).toEqual([]);
  });

  it("host: the host's interfaces, the fake internet's veth among them", async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--network', 'host', '--', 'ip', '-o', 'link']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${HOST_IF}@`);
    const self = sh('ip', ['-o', 'link']).split('\n').filter((l) => /^\d+:/.test(l)).length;
    expect(r.stdout.split('\n').filter((l) => /^\d+:/.test(l))).toHaveLength(self);
  });

  it('ns:PATH joins that namespace: the fake internet, from inside', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--network', `ns:/run/netns/${NS}`, '--', 'sh', '-c', `ip -o link; ${wget(`http://${SERVER2}/`).join(' ')}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${NS_IF}@`);
    expect(r.stdout).toContain('fake internet');
  });

  it('refuses an unknown mode, -p without bridge, and a namespace or container that is not there', async () => {
    const bad = await cli(['run', '--rootfs', rootfs, '--network', 'overlay', '--', 'true']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('"overlay" is not a network: none, host, bridge, ns:PATH or container:NAME');
    const p = await cli(['run', '--rootfs', rootfs, '-p', '8080:80', '--', 'true']);
    expect(p.code).toBe(125);
    expect(p.stderr).toContain('publishes ports of a container on network "bridge", not "none"');
    // -P on the host's network is refused, not ignored (Docker ignores it): it would publish nothing.
    const all = await cli(['run', '--rootfs', rootfs, '--network', 'host', '--expose', '80', '-P', '--', 'true']);
    expect(all.code).toBe(125);
    expect(all.stderr).toBe('tsbox: config(--publish-all): publishes the exposed ports of a container on network "bridge", not "host"\n');
    // A namespace or a container that is not there: one line each.
    const ns = await cli(['run', '--rootfs', rootfs, '--network', `ns:/run/netns/${NS}-missing`, '--', 'true']);
    expect(ns.code).toBe(125);
    expect(ns.stderr).toBe(`tsbox: join(/run/netns/${NS}-missing): ENOENT — open the net namespace to join\n`);
    const c = await cli(['run', '--rootfs', rootfs, '--network', `container:${NS}-missing`, '--', 'true']);
    expect(c.code).toBe(125);
    expect(c.stderr).toContain(`tsbox: state(${NS}-missing): ENOENT — no such container`);
  });
});

describe('bridge', () => {
  it('-p publishes a server inside the container on the host, 127.0.0.1 included', async () => {
    const port = await freePort();
    const port2 = await freePort();
    const c = await spawnContainer(['sh', '-c', 'mkdir -p /tmp/w && echo from-inside > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w'], {
      rootfs,
      network: 'bridge',
      publish: [`127.0.0.1:${port}:8000`, `${port2}:8000/tcp`],
    });
    try {
      expect(c.network?.ports).toEqual([
        { hostIp: '127.0.0.1', hostPort: port, containerPort: 8000, protocol: 'tcp' },
        { hostIp: '', hostPort: port2, containerPort: 8000, protocol: 'tcp' },
      ]);
      const get = async (url: string) => {
        for (let i = 0; i < 50; i++) {
          try {
            return await (await fetch(url)).text();
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        return 'unreachable';
      };
      expect(await get(`http://127.0.0.1:${port}/`)).toBe('from-inside\n');
      expect(await get(`http://10.89.0.1:${port2}/`)).toBe('from-inside\n');
      // The same host port again: refused (a second DNAT rule would never match), nothing made.
      const again = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${port2}:80`, '--', 'true']);
      expect(again.code).toBe(125);
      expect(again.stderr).toBe(`tsbox: network(${port2}/tcp): EADDRINUSE — the host port is published by container ${c.id.slice(0, 12)} already; publish another host port, or stop that container\n`);
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(leftovers(c.id)).toEqual([]);
  });

  it('--expose and -P publish each exposed port -p leaves out on a free host port, shown by inspect; it is free again once the container is gone', async () => {
    const name = `net-publish-all-${process.pid}`;
    const fixed = await freePort();
    const serve = 'mkdir -p /tmp/w && echo exposed > /tmp/w/index.html && (httpd -f -p 8001 -h /tmp/w &) && exec httpd -f -p 8000 -h /tmp/w';
    const r = await cli(['run', '-d', '--name', name, '--rootfs', rootfs, '--network', 'bridge', '--expose', '8000-8001', '--expose', '53/udp', '-p', `${fixed}:8001`, '-P', '--', 'sh', '-c', serve]);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    let ports: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[] = [];
    try {
      const state = (JSON.parse((await cli(['inspect', name])).stdout) as { network: { ports: typeof ports } }[])[0]!;
      ports = state.network.ports;
      // -p's own first, then one chosen port for each exposed port it left out.
      expect(ports.map((p) => [p.hostIp, p.containerPort, p.protocol])).toEqual([
        ['', 8001, 'tcp'],
        ['', 8000, 'tcp'],
        ['', 53, 'udp'],
      ]);
      expect(ports[0]!.hostPort).toBe(fixed);
      const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
      for (const p of ports.slice(1)) {
        expect(p.hostPort).toBeGreaterThanOrEqual(lo);
        expect(p.hostPort).toBeLessThanOrEqual(hi);
      }
      const get = async (url: string) => {
        for (let i = 0; i < 50; i++) {
          try {
            return await (await fetch(url)).text();
          } catch {
            await new Promise((res) => setTimeout(res, 100));
          }
        }
        return 'unreachable';
      };
      expect(await get(`http://${BRIDGE_GW}:${ports[1]!.hostPort}/`)).toBe('exposed\n');
      expect(await get(`http://127.0.0.1:${fixed}/`)).toBe('exposed\n');
      // tsbox port: as docker port prints them, all of them or one.
      expect(await cli(['port', name])).toMatchObject({ code: 0, stdout: ports.map((p) => `${p.containerPort}/${p.protocol} -> 0.0.0.0:${p.hostPort}\n`).join('') });
      expect(await cli(['port', name, '53/udp'])).toMatchObject({ code: 0, stdout: `0.0.0.0:${ports[2]!.hostPort}\n` });
      const none = await cli(['port', name, '9999']);
      expect(none.code).toBe(125);
      expect(none.stderr).toBe(`tsbox: port(9999/tcp): ENOENT — container ${name} does not publish that port; \`tsbox port ${name}\` lists what it publishes\n`);
      // A second container publishing that chosen port is refused, as any -p of a published port.
      const again = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${ports[1]!.hostPort}:80`, '--', 'true']);
      expect(again.code).toBe(125);
      expect(again.stderr).toContain('the host port is published by container');
    } finally {
      expect((await cli(['rm', '-f', name])).code).toBe(0);
    }
    expect(leftovers(id)).toEqual([]);
    // Free again: no rule left for it, and the next container may publish it.
    expect(iptablesSave()).not.toMatch(new RegExp(`--dport ${ports[1]!.hostPort}\\b`));
    const next = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${ports[1]!.hostPort}:80`, '--', 'true']);
    expect(next.code, next.stderr).toBe(0);
  });

  it('-P with the API: publishAll and expose, the chosen port in container.network and in the result', async () => {
    const c = await spawnContainer(['sh', '-c', 'mkdir -p /tmp/w && echo api > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w'], { rootfs, network: 'bridge', expose: ['8000'], publishAll: true });
    let port = 0;
    try {
      expect(c.network?.ports).toHaveLength(1);
      port = c.network!.ports[0]!.hostPort;
      expect(c.network?.ports[0]).toEqual({ hostIp: '', hostPort: port, containerPort: 8000, protocol: 'tcp' });
      let body = 'unreachable';
      for (let i = 0; i < 50 && body === 'unreachable'; i++) {
        body = await fetch(`http://${BRIDGE_GW}:${port}/`).then(
          (res) => res.text(),
          async () => (await new Promise((res) => setTimeout(res, 100)), 'unreachable'),
        );
      }
      expect(body).toBe('api\n');
    } finally {
      c.kill('SIGKILL');
    }
    const result = await c.wait();
    expect(result.network?.ports.map((p) => p.hostPort)).toEqual([port]);
    expect(leftovers(c.id)).toEqual([]);
  });

  it("a container's raw frame to the host's 127.0.0.1, through the gateway's MAC, reaches nothing (CVE-2020-8558); the gateway's address still answers", async () => {
    // A service of the host on loopback only, and one on every address (the probe's own check: its SYN and the answer work).
    const local = createServer();
    const every = createServer();
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => every.listen(0, '0.0.0.0', r));
    try {
      const lport = (local.address() as { port: number }).port;
      const eport = (every.address() as { port: number }).port;
      // The gateway's MAC, as the container learns it; then one SYN to each (CAP_NET_RAW is in the default set).
      const script = `ping -c1 -W2 ${BRIDGE_GW} >/dev/null; mac=$(ip neigh show ${BRIDGE_GW} | awk '{print $5}'); tsbox-probe syn eth0 "$mac" ${BRIDGE_GW} ${eport}; tsbox-probe syn eth0 "$mac" 127.0.0.1 ${lport}`;
      // A port published on the host's 127.0.0.1: portmap turns route_localnet on for it.
      // The container stays while the host's side is read (the bridge goes with the last container).
      const c = await spawnContainer(['sh', '-c', `${script}; echo done; sleep 30`], { rootfs, network: 'bridge', publish: [`127.0.0.1:${await freePort()}:80`] });
      let out = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      try {
        expect(await eventually(() => out.includes('done\n'), 15_000), out).toBe(true);
        const [viaGateway, viaLoopback] = out.trim().split('\n').slice(0, 2).map((l) => JSON.parse(l) as { sent: boolean; answer: string | null });
        expect(viaGateway).toEqual({ sent: true, answer: 'syn-ack' });
        expect(viaLoopback).toEqual({ sent: true, answer: null });
        // portmap's route_localnet is on (that published port needs it): the rules are what stop the frame.
        expect(readFileSync('/proc/sys/net/ipv4/conf/tsbox0/route_localnet', 'utf8').trim()).toBe('1');
      } finally {
        c.kill('SIGKILL');
        await c.wait();
      }
    } finally {
      local.close();
      every.close();
    }
  });

  it("refuses to publish a port a host process listens on (its traffic would go to the container)", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as { port: number };
      const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${port}:80`, '--', 'true']);
      expect(r.code).toBe(125);
      expect(r.stderr).toBe(`tsbox: network(${port}/tcp): EADDRINUSE — a process of the host listens on that port; publish another host port (-p HOSTPORT:CONTAINERPORT)\n`);
    } finally {
      server.close();
    }
  });

  it('two bridged containers reach each other by address; the result, state and --report name it', async () => {
    const server = await spawnContainer(['sh', '-c', 'mkdir -p /tmp/w && echo peer > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w'], { rootfs, network: 'bridge', name: `net-peer-${process.pid}` });
    try {
      const info = server.network!;
      expect(info.mode).toBe('bridge');
      expect(info.bridge).toBe('tsbox0');
      expect(info.gateway).toBe('10.89.0.1');
      expect(info.interfaces).toHaveLength(1);
      expect(info.interfaces[0]!.name).toBe('eth0');
      const address = info.interfaces[0]!.addresses[0]!.split('/')[0]!;
      expect(address).toMatch(/^10\.89\./);
      expect(linkExists(info.hostInterface!)).toBe(true);
      // inspect shows it too, checked by the plugins (CNI CHECK).
      const inspect = async () => (JSON.parse((await cli(['inspect', `net-peer-${process.pid}`])).stdout) as { network: typeof info & { check: string } }[])[0]!.network;
      expect(await inspect()).toEqual({ ...info, check: 'ok' });

      const dir = mkdtempSync(join(tmpdir(), 'tsbox-net-report-'));
      try {
        const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--report', join(dir, 'r.json'), '--', 'sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do ${wget(`http://${address}:8000/`).join(' ')} && exit 0; sleep 0.2; done; exit 1`]);
        expect(r.stdout, r.stderr).toBe('peer\n');
        expect(r.code).toBe(0);
        const report = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { network: typeof info };
        expect(report.network.mode).toBe('bridge');
        expect(report.network.interfaces[0]!.addresses[0]).toMatch(/^10\.89\.\d+\.\d+\/16$/);
        expect(report.network.interfaces[0]!.addresses[0]).not.toBe(info.interfaces[0]!.addresses[0]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }

      // container:NAME shares its namespace: the same eth0 and address.
      const joined = await cli(['run', '--rootfs', rootfs, '--network', `container:net-peer-${process.pid}`, '--', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
      expect(joined.code).toBe(0);
      expect(joined.stdout).toContain(`inet ${address}/16`);

      // What CHECK sees when the address is gone from the container's interface.
      sh('nsenter', [`--net=/proc/${server.pid}/ns/net`, 'ip', 'addr', 'flush', 'dev', 'eth0']);
      expect((await inspect()).check).toBe(`network(/usr/lib/cni/bridge): CNI CHECK of the bridge plugin failed (CNI error 999): Failed to match addr ${info.interfaces[0]!.addresses[0]} on interface eth0`);
    } finally {
      server.kill('SIGKILL');
      await server.wait();
    }
    expect(leftovers(server.id)).toEqual([]);
    expect(linkExists(server.network!.hostInterface!)).toBe(false);
  });

  it('resolv.conf: --dns and --dns-search replace the host\'s; --add-host, the hostname and its address are in /etc/hosts', async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--dns-search', 'fake.test', '--add-host', 'db:203.0.113.2', '--hostname', 'web', '--', 'sh', '-c', 'cat /etc/resolv.conf /etc/hosts']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`nameserver ${SERVER}`);
    expect(r.stdout).toContain('search fake.test');
    expect(r.stdout.match(/^nameserver /gm)).toHaveLength(1);
    expect(r.stdout).toMatch(/^203\.0\.113\.2\tdb$/m);
    // Its name is on its own address, which ADD gave it (as Docker's), not on loopback's.
    expect(r.stdout).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    expect(r.stdout).toMatch(/^10\.89\.\d+\.\d+\tweb$/m);
  });

  describe('a setup that fails with fake plugins', () => {
    // Plugins that do what the real ones cannot be made to: fail their DEL,
    // or get in the way of the record written after ADD. What each does is
    // decided by a file beside it; DEL leaves a mark when it runs.
    const fake = (dir: string, type: string, add: string) => {
      const path = join(dir, type);
      writeFileSync(path, `#!/bin/sh\ncat >/dev/null\nd=$(dirname "$0")\ncase "$CNI_COMMAND" in\nADD) ${add} ;;\nDEL) if [ -e "$d/del-fails" ]; then echo '{"code":11,"msg":"fake DEL failure"}'; exit 1; fi; touch "$d/del-ran-${type}" ;;\nesac\n`);
      chmodSync(path, 0o755);
    };
    const setup = () => {
      const dir = mkdtempSync(join(tmpdir(), 'tsbox-fake-cni-'));
      fake(dir, 'fake-ok', `touch "$d/added-fake-ok"; if [ -e "$d/in-the-way" ]; then mkdir ${NETWORK_DIR}/$CNI_CONTAINERID.json.tmp; fi; echo '{"cniVersion":"1.0.0","interfaces":[],"ips":[]}'`);
      fake(dir, 'fake-fail', `echo '{"code":11,"msg":"fake ADD failure"}'; exit 1`);
      return dir;
    };
    const newId = () => [...Array(64)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');
    // A process in a net namespace of its own, as a container's PID 1 is.
    let holder: ChildProcess;
    beforeAll(() => {
      holder = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
    });
    afterAll(() => {
      holder.kill('SIGKILL');
    });
    const inOwnNs = async () => {
      expect(await eventually(() => readlinkSync(`/proc/${holder.pid!}/ns/net`) !== readlinkSync('/proc/self/ns/net'))).toBe(true);
      return holder.pid!;
    };

    it("refuses to run the plugins in the caller's own namespace (the host's)", async () => {
      const dir = setup();
      const id = newId();
      try {
        const list = { cniVersion: '1.0.0', name: 'tsbox-fake', plugins: [{ type: 'fake-ok' }] };
        await expect(attachBridge(id, process.pid, process.pid, [], { list, cniPath: dir }, false)).rejects.toThrow("is this process's own network namespace");
        expect(existsSync(join(NETWORK_DIR, `${id}.json`))).toBe(false);
        expect(existsSync(join(dir, 'added-fake-ok'))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('keeps the record for gc when the rollback DEL fails', async () => {
      const dir = setup();
      const id = newId();
      try {
        writeFileSync(join(dir, 'del-fails'), '');
        const list = { cniVersion: '1.0.0', name: 'tsbox-fake', plugins: [{ type: 'fake-ok' }, { type: 'fake-fail' }] };
        await expect(attachBridge(id, await inOwnNs(), process.pid, [], { list, cniPath: dir }, false)).rejects.toThrow('fake ADD failure');
        expect(existsSync(join(NETWORK_DIR, `${id}.json`))).toBe(true);
      } finally {
        rmSync(join(NETWORK_DIR, `${id}.json`), { force: true });
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('runs DEL when the record cannot be written after ADD, and then leaves no record', async () => {
      const dir = setup();
      const id = newId();
      try {
        writeFileSync(join(dir, 'in-the-way'), '');
        const list = { cniVersion: '1.0.0', name: 'tsbox-fake', plugins: [{ type: 'fake-ok' }] };
        await expect(attachBridge(id, await inOwnNs(), process.pid, [], { list, cniPath: dir }, false)).rejects.toThrow(/EISDIR/);
        expect(existsSync(join(dir, 'del-ran-fake-ok'))).toBe(true);
        expect(existsSync(join(NETWORK_DIR, `${id}.json`))).toBe(false);
      } finally {
        rmSync(join(NETWORK_DIR, `${id}.json.tmp`), { recursive: true, force: true });
        rmSync(join(NETWORK_DIR, `${id}.json`), { force: true });
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('a launch that fails after ADD (a command that does not exist) leaves nothing', async () => {
    const before = existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR) : [];
    const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${await freePort()}:80`, '--', '/no/such/command']);
    expect(r.code).toBe(127);
    expect(readdirSync(NETWORK_DIR).filter((n) => !before.includes(n))).toEqual([]);
  });

  it('a timeout kills a bridged container, and its network goes with it', async () => {
    const c = await spawnContainer(['sleep', '60'], { rootfs, network: 'bridge', timeout: 300 });
    const veth = c.network!.hostInterface!;
    expect(linkExists(veth)).toBe(true);
    expect((await c.wait()).timedOut).toBe(true);
    expect(leftovers(c.id)).toEqual([]);
    expect(linkExists(veth)).toBe(false);
  });

  it('a detached bridged container keeps its network until tsbox rm', async () => {
    const name = `net-detached-${process.pid}`;
    const run = await cli(['run', '-d', '--name', name, '--rootfs', rootfs, '--network', 'bridge', '--', 'sleep', '60']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    const state = (JSON.parse((await cli(['inspect', name])).stdout) as { network: { hostInterface: string } }[])[0]!;
    expect(linkExists(state.network.hostInterface)).toBe(true);
    expect(leftovers(id)).toContain('record');
    const rm = await cli(['rm', '-f', name]);
    expect(rm.code).toBe(0);
    expect(leftovers(id)).toEqual([]);
    expect(linkExists(state.network.hostInterface)).toBe(false);
  });

  it('200 bridged runs, in a row and 8 at once, leave no veth, lease, rule or record behind', async () => {
    const ids: string[] = [];
    const veths: string[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await spawnContainer(['true'], { rootfs, network: 'bridge', publish: [`${await freePort()}:80`] });
      ids.push(c.id);
      veths.push(c.network!.hostInterface!);
      await c.wait();
    }
    // And 180 more, 8 at once: each its own address (host-local's lock), the bridge made once per batch.
    for (let b = 0; b < 180; b += 8) {
      const batch = await Promise.all(Array.from({ length: Math.min(8, 180 - b) }, () => spawnContainer(['true'], { rootfs, network: 'bridge' })));
      const addresses = batch.map((c) => c.network!.interfaces[0]!.addresses[0]!);
      expect(new Set(addresses).size).toBe(batch.length);
      for (const c of batch) {
        expect((await c.wait()).exitCode).toBe(0);
        ids.push(c.id);
        veths.push(c.network!.hostInterface!);
      }
    }
    expect(ids).toHaveLength(200);
    for (const id of ids) expect(leftovers(id), id).toEqual([]);
    for (const v of veths) expect(linkExists(v), v).toBe(false);
    // No lease is left in host-local's store, and the last one took the
    // bridge with it, and the rules that guard it.
    const leases = join(NETWORK_DIR, 'ipam', 'tsbox');
    expect(existsSync(leases) ? readdirSync(leases).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)) : []).toEqual([]);
    expect(readdirSync(NETWORK_DIR).filter((n) => n.endsWith('.json'))).toEqual([]);
    expect(linkExists('tsbox0')).toBe(false);
    for (const { cmd, table, chain, rule } of GUARD_RULES) expect(spawnSync(cmd, ['-w', '-t', table, '-C', chain, ...rule]).status, `${cmd} ${chain}`).not.toBe(0);
    // The next bridged container makes them again.
    const again = await spawnContainer(['sh', '-c', 'ip -o -4 addr show eth0'], { rootfs, network: 'bridge' });
    expect(linkExists('tsbox0')).toBe(true);
    expect((await again.wait()).exitCode).toBe(0);
    expect(linkExists('tsbox0')).toBe(false);
  }, 300_000);

  it("a port published by a container whose caller was killed goes to the next container that publishes it, with no gc run between", async () => {
    // This process's own collection at its first launch, out of the way.
    await (await spawnContainer(['true'], { rootfs })).wait();
    const port = await freePort();
    const serve = (text: string) => `mkdir -p /tmp/w && echo ${text} > /tmp/w/index.html && exec httpd -f -p 8000 -h /tmp/w`;
    const before = new Set(readdirSync(NETWORK_DIR));
    const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--network', 'bridge', '-p', `127.0.0.1:${port}:8000`, '--', 'sh', '-c', serve('old')], { stdio: 'ignore' });
    const mine = () => readdirSync(NETWORK_DIR).filter((n) => n.endsWith('.json') && !before.has(n));
    expect(await eventually(() => mine().length === 1 && JSON.parse(readFileSync(join(NETWORK_DIR, mine()[0]!), 'utf8')).result !== null, 10_000)).toBe(true);
    const record = JSON.parse(readFileSync(join(NETWORK_DIR, mine()[0]!), 'utf8')) as { id: string; monitor: { pid: number } };
    child.kill('SIGKILL');
    expect(await eventually(() => !alive(record.monitor.pid), 10_000)).toBe(true);
    const c = await spawnContainer(['sh', '-c', serve('new')], { rootfs, network: 'bridge', publish: [`127.0.0.1:${port}:8000`] });
    try {
      // The old container's network went before this one's was made.
      expect(leftovers(record.id)).toEqual([]);
      let got = 'unreachable';
      for (let i = 0; i < 50 && got === 'unreachable'; i++) {
        got = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()).catch(async () => {
          await new Promise((r) => setTimeout(r, 100));
          return 'unreachable';
        });
      }
      expect(got).toBe('new\n');
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(leftovers(c.id)).toEqual([]);
  });

  it('kill -9 of the caller mid-run: the monitor ends the container, and gc deletes its network', async () => {
    const before = new Set(existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR) : []);
    const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--network', 'bridge', '-p', `${await freePort()}:80`, '--', 'sleep', '60'], { stdio: 'ignore' });
    const mine = () => readdirSync(NETWORK_DIR).filter((n) => n.endsWith('.json') && !before.has(n));
    expect(await eventually(() => mine().length === 1, 10_000)).toBe(true);
    const id = mine()[0]!.replace(/\.json$/, '');
    const record = JSON.parse(readFileSync(join(NETWORK_DIR, `${id}.json`), 'utf8')) as { monitor: { pid: number }; result: unknown };
    expect(await eventually(() => record.result !== null || (JSON.parse(readFileSync(join(NETWORK_DIR, `${id}.json`), 'utf8')) as { result: unknown }).result !== null, 10_000)).toBe(true);
    expect(leftovers(id)).toContain('iptables rule');
    child.kill('SIGKILL');
    expect(await eventually(() => !alive(record.monitor.pid), 10_000)).toBe(true);
    const gc = await cli(['gc']);
    expect(gc.code).toBe(0);
    expect(leftovers(id)).toEqual([]);
  });
});

describe('egress allowlist', () => {
  const allowlisted = (args: string[], script: string) => cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, ...args, '--', 'sh', '-c', script]);

  it('--allow-host a.test: reaches a.test by name; b.test has no name, and its address is refused at once; so is UDP', async () => {
    const r = await allowlisted(['--allow-host', 'a.test'], [
      'cat /etc/resolv.conf',
      `${wget('http://a.test/').join(' ')}; echo a=$?`,
      `${wget('http://b.test/').join(' ')}; echo b=$?`,
      `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
      // An address a.test's answer did not give, on the same server's network.
      `${wget(`http://198.51.100.1/`).join(' ')}; echo host=$?`,
      `nslookup b.test ${SERVER} >/dev/null 2>&1; echo udp-elsewhere=$?`,
      // No IPv6 at all (not even link-local, which would reach the host around IPv4's rules).
      'echo v6=$(ip -6 addr | grep -c inet6)',
    ].join('; '));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nameserver 10.89.0.1\n');
    expect(r.stdout.match(/^nameserver /gm)).toHaveLength(1);
    expect(r.stdout).toContain('fake internet\na=0');
    expect(r.stdout).toMatch(/b=[1-9]/);
    expect(r.stderr).toContain("wget: bad address 'b.test'");
    expect(r.stdout).toMatch(/b-raw=[1-9]/);
    expect(r.stderr).toContain(`wget: can't connect to remote host (${SERVER2}): Connection refused`);
    expect(r.stdout).toMatch(/host=[1-9]/);
    expect(r.stdout).toMatch(/udp-elsewhere=[1-9]/);
    expect(r.stdout).toContain('v6=0');
    // Refused at once, not left to time out: TCP with a reset (above), the rest with ICMP port unreachable.
    expect(r.stderr).not.toContain('timed out');
    expect(r.stderr).not.toContain('Terminated');
  });

  it("a malformed query (one byte) to the resolver is dropped: the caller, whose process the resolver is, lives on and answers the next", async () => {
    const r = await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', 'sh', '-c', `tsbox-probe udp ${BRIDGE_GW} 53 01 && tsbox-probe udp ${BRIDGE_GW} 53 ff && nslookup -type=a a.test`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('{"sent":1}\n{"sent":1}\n');
    expect(r.stdout).toMatch(new RegExp(`Address: ${SERVER.replace(/\./g, '\\.')}\\b`));
  });

  it('has no raw socket to write frames around its rules, and a process exec\'d into it none either', async () => {
    const c = await spawnContainer(['sh', '-c', 'tsbox-probe syn eth0 02:00:00:00:00:01 127.0.0.1 1; exec sleep 30'], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] });
    try {
      const first = JSON.parse(await firstLine(c.stdout!)) as { sent: boolean; error: string };
      expect(first.sent).toBe(false);
      expect(first.error).toContain('socket(AF_PACKET): Operation not permitted');
      const e = await c.exec(['tsbox-probe', 'syn', 'eth0', '02:00:00:00:00:01', '127.0.0.1', '1']);
      const out = await firstLine(e.stdout!);
      await e.wait();
      expect(out).toContain('socket(AF_PACKET): Operation not permitted');
      await expect(c.exec(['true'], { capAdd: ['NET_RAW'] })).rejects.toThrow('"NET_RAW" cannot be added to a process of a container with an egress allowlist');
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(await cli(['run', '--rootfs', rootfs, '--network', 'bridge', '--allow-host', 'a.test', '--cap-add', 'NET_RAW', '--', 'true'])).toMatchObject({ code: 125 });
  });

  it('holds its veth to its own address, and keeps IPv6 from the bridge off the host, whatever is done in its namespace', async () => {
    // A service of the host on every IPv6 (and IPv4) address.
    const v6 = createServer((s) => s.end('host-v6\n'));
    await new Promise<void>((r) => v6.listen(0, '::', r));
    const c = await spawnContainer(['sleep', '30'], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] });
    try {
      // What CAP_NET_ADMIN in its namespace would do, done here as root: a second address, and IPv6 back on.
      const inNs = (args: string[]) => spawnSync('nsenter', [`--net=/proc/${c.pid}/ns/net`, ...args], { encoding: 'utf8' });
      expect(inNs(['ip', 'addr', 'add', '10.89.250.250/16', 'dev', 'eth0']).status).toBe(0);
      const spoofed = inNs(['curl', '-s', '-m', '2', '--interface', '10.89.250.250', `http://${SERVER2}/`]);
      expect(spoofed.stdout).not.toContain('fake internet');
      expect(spoofed.status).not.toBe(0);
      expect(inNs(['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=0']).status).toBe(0);
      expect(inNs(['ip', '-6', 'addr', 'add', 'fe80::99/64', 'dev', 'eth0', 'nodad']).status).toBe(0);
      // The bridge's link-local address, once its duplicate detection is over (a new bridge's is tentative a moment).
      const linkLocal = () => sh('ip', ['-6', '-o', 'addr', 'show', 'dev', 'tsbox0', 'scope', 'link']);
      expect(await eventually(() => /inet6 fe80::/.test(linkLocal()) && !linkLocal().includes('tentative'), 10_000)).toBe(true);
      const hostLL = /inet6 (fe80::[0-9a-f:]+)\//.exec(linkLocal())?.[1];
      const port = (v6.address() as { port: number }).port;
      // (Run without blocking: the server is this process's.)
      const overV6 = await runCommand('nsenter', [`--net=/proc/${c.pid}/ns/net`, 'curl', '-s', '-g', '--http0.9', '-m', '2', `http://[${hostLL!}%25eth0]:${port}/`]);
      expect(overV6.stdout).not.toContain('host-v6');
      expect(overV6.code).not.toBe(0);
      // (bridge's DEL fails on an address it did not give: gone again, for the check below.)
      expect(inNs(['ip', 'addr', 'del', '10.89.250.250/16', 'dev', 'eth0']).status).toBe(0);
      // The check that curl and the address are right: the same from the host's own namespace.
      expect((await runCommand('curl', ['-s', '-g', '--http0.9', '-m', '2', `http://[${hostLL!}%25tsbox0]:${port}/`])).stdout).toBe('host-v6\n');
    } finally {
      v6.close();
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(leftovers(c.id)).toEqual([]);
  });

  it('lets a resolved address through with one rule, however often it is asked for', async () => {
    const c = await spawnContainer(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do nslookup -type=a a.test >/dev/null; done; echo asked; exec sleep 30'], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] });
    try {
      expect(await firstLine(c.stdout!)).toBe('asked');
      const rules = sh('iptables-save', ['-t', 'filter']).split('\n').filter((l) => l.startsWith(`-A TSBOX-${c.id.slice(0, 12)} -d ${SERVER}/32`));
      expect(rules).toEqual([`-A TSBOX-${c.id.slice(0, 12)} -d ${SERVER}/32 -j ACCEPT`]);
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(leftovers(c.id)).toEqual([]);
  });

  it("refuses an answer that leads to the host (its gateway address) or a private network (DNS rebinding), and asks upstream a query of its own", async () => {
    const c = await spawnContainer(['sh', '-c', 'nslookup -type=a gw.test; echo gw=$?; nslookup -type=a lan.test; echo lan=$?; nslookup -type=a a.test >/dev/null; echo a=$?; exec sleep 30'], { rootfs, network: 'bridge', allow: ['gw.test', 'lan.test', 'a.test'], dns: [SERVER] });
    try {
      const out: string[] = [];
      c.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
      expect(await eventually(() => out.join('').includes('a='), 10_000)).toBe(true);
      expect(out.join('')).toMatch(/gw=[1-9]/);
      expect(out.join('')).not.toContain(`Address: ${BRIDGE_GW}`);
      expect(out.join('')).toMatch(/lan=[1-9]/);
      expect(out.join('')).not.toContain('192.168.77.7');
      expect(out.join('')).toContain('a=0');
      // (Its resolver's rule is the gateway's too, on its own port.)
      const chain = sh('iptables-save', ['-t', 'filter']).split('\n').filter((l) => l.startsWith(`-A TSBOX-${c.id.slice(0, 12)} -d `) && !l.includes('--dport'));
      expect(chain).toEqual([`-A TSBOX-${c.id.slice(0, 12)} -d ${SERVER}/32 -j ACCEPT`]);
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
    expect(leftovers(c.id)).toEqual([]);
  });

  it('--allow-net A.B.C.D/BITS:PORT: that address and port only; no name resolves', async () => {
    const r = await allowlisted(['--allow-net', `${SERVER2}/32:80`], [
      `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
      `${wget(`http://${SERVER}/`).join(' ')}; echo a-raw=$?`,
      `${wget('http://a.test/').join(' ')}; echo a=$?`,
      `ping -c 1 -W 1 ${SERVER2} >/dev/null 2>&1; echo ping=$?`,
    ].join('; '));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('fake internet\nb-raw=0');
    expect(r.stdout).toMatch(/a-raw=[1-9]/);
    expect(r.stdout).toMatch(/a=[1-9]/);
    expect(r.stdout).toMatch(/ping=[1-9]/);
  });

  it('is in the result; its chain and rules go when the container ends, and with gc after kill -9 of the caller', async () => {
    const c = await spawnContainer(['sleep', '30'], { rootfs, network: 'bridge', allow: ['a.test:80', '203.0.113.0/24'], dns: [SERVER] });
    expect(c.network?.allow).toEqual([
      { kind: 'host', name: 'a.test', port: 80 },
      { kind: 'net', cidr: '203.0.113.0/24', port: null },
    ]);
    expect(iptablesSave()).toContain(`TSBOX-${c.id.slice(0, 12)}`);
    c.kill('SIGKILL');
    await c.wait();
    expect(leftovers(c.id)).toEqual([]);
    expect(tsboxNflogGroups()).toEqual([]);

    const before = new Set(readdirSync(NETWORK_DIR));
    const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--network', 'bridge', '--allow-host', 'a.test', '--', 'sleep', '60'], { stdio: 'ignore' });
    const mine = () => readdirSync(NETWORK_DIR).filter((n) => n.endsWith('.json') && !before.has(n));
    expect(await eventually(() => mine().length === 1, 10_000)).toBe(true);
    const id = mine()[0]!.replace(/\.json$/, '');
    expect(await eventually(() => iptablesSave().includes(`TSBOX-${id.slice(0, 12)}`), 10_000)).toBe(true);
    const record = JSON.parse(readFileSync(join(NETWORK_DIR, `${id}.json`), 'utf8')) as { monitor: { pid: number } };
    child.kill('SIGKILL');
    expect(await eventually(() => !alive(record.monitor.pid), 10_000)).toBe(true);
    expect((await cli(['gc'])).code).toBe(0);
    expect(leftovers(id)).toEqual([]);
    // Its NFLOG group went with the killed caller's socket.
    expect(tsboxNflogGroups()).toEqual([]);
  });

  it('without an NFLOG group to bind, the allowlist still holds, names are still reported, and a notice says packets are not', async () => {
    // Every group of tsbox's range taken by another socket (as a host whose kernel has no NFLOG would fail the bind too).
    const taken = Array.from({ length: NFLOG_COUNT }, (_, i) => loadNative().binding.NflogReader.bind(NFLOG_FIRST + i, 1));
    try {
      const c = await spawnContainer(['sh', '-c', `${wget('http://a.test/').join(' ')} >/dev/null; echo a=$?; ${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?; nslookup -type=a b.test >/dev/null 2>&1; echo b=$?`], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] });
      const out: string[] = [];
      c.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
      const result = await c.wait();
      expect(c.notices.join('\n')).toMatch(/refused connections are not reported \(the allowlist holds\): bind an NFLOG group of 47000\.\.47999: Operation not permitted/);
      expect(out.join('')).toContain('a=0');
      expect(out.join('')).toMatch(/b-raw=[1-9]/);
      expect(out.join('')).toMatch(/b=[1-9]/);
      expect(result.network?.refused?.reporting).toBe(false);
      expect(result.network?.refused?.destinations).toEqual([{ protocol: 'dns', address: null, port: null, name: 'b.test', count: expect.any(Number) as number }]);
      expect(leftovers(c.id)).toEqual([]);
    } finally {
      for (const r of taken) r.close();
    }
    expect(tsboxNflogGroups()).toEqual([]);
  });

  it('a launch that fails after its allowlist was set up leaves no NFLOG group, chain or record', async () => {
    const records = () => (existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((f) => f.endsWith('.json')) : []);
    const tsboxChains = () => new Set([...iptablesSave().matchAll(/^:(TSBOX-[0-9a-f]+) /gm)].map((m) => m[1]!));
    const before = new Set(records());
    const chainsThen = tsboxChains();
    await expect(spawnContainer(['/no/such/command'], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] })).rejects.toMatchObject({ errno: 2 });
    expect(tsboxNflogGroups()).toEqual([]);
    expect(new Set(records())).toEqual(before);
    expect(tsboxChains()).toEqual(chainsThen);
  });

  it('after a timeout: what was refused is in the result, and the NFLOG group is gone', async () => {
    const c = await spawnContainer(['sh', '-c', `tsbox-probe udp ${SERVER2} 6000 01 >/dev/null; echo sent; exec sleep 30`], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER], timeout: 3_000 });
    const result = await c.wait();
    expect(result.timedOut).toBe(true);
    expect(result.network?.refused?.destinations).toContainEqual({ protocol: 'udp', address: SERVER2, port: 6000, count: 1 });
    expect(tsboxNflogGroups()).toEqual([]);
    expect(leftovers(c.id)).toEqual([]);
  });

  it("reports each refused connection and name: 'refused' events and the result's network.refused, nothing for what is allowed, and no NFLOG group or socket left", async () => {
    const before = ownNetfilterSockets();
    const c = await spawnContainer(
      [
        'sh',
        '-c',
        [
          'read go',
          `${wget('http://a.test/').join(' ')} >/dev/null; echo a=$?`,
          `${wget(`http://${SERVER2}:8080/`).join(' ')}; echo tcp=$?`,
          `tsbox-probe udp ${SERVER2} 5353 01 >/dev/null`,
          `tsbox-probe ping ${SERVER2}`,
          'nslookup -type=a b.test >/dev/null 2>&1; echo b=$?',
          'nslookup -type=a gw.test >/dev/null 2>&1; echo gw=$?',
        ].join('; '),
      ],
      { rootfs, network: 'bridge', allow: ['a.test', 'gw.test'], dns: [SERVER] },
    );
    const events: RefusedConnection[] = [];
    c.on('refused', (r: RefusedConnection) => events.push(r));
    const out: string[] = [];
    c.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
    // The group is bound while it runs (nfnetlink_log lists it).
    expect(tsboxNflogGroups().length).toBeGreaterThan(0);
    // Without CAP_NET_RAW its echo request needs an ICMP datagram socket, which its namespace allows only once told so.
    sh('nsenter', [`--net=/proc/${c.pid}/ns/net`, 'sysctl', '-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']);
    c.stdin!.end('go\n');
    const result = await c.wait();
    expect(out.join('')).toContain('a=0');
    expect(out.join('')).toMatch(/tcp=[1-9]/);
    const expected = [
      { protocol: 'tcp', address: SERVER2, port: 8080 },
      { protocol: 'udp', address: SERVER2, port: 5353 },
      { protocol: 'icmp', address: SERVER2, port: null, icmpType: 8 },
      { protocol: 'dns', address: null, port: null, name: 'b.test' },
      { protocol: 'dns', address: BRIDGE_GW, port: null, name: 'gw.test' },
    ];
    for (const e of expected) expect(events).toContainEqual(e);
    const refused = result.network?.refused;
    expect(refused?.reporting).toBe(true);
    for (const e of expected) expect(refused?.destinations).toContainEqual({ ...e, count: expect.any(Number) as number });
    expect(refused!.total).toBe(refused!.destinations.reduce((n, d) => n + d.count, 0) + refused!.others);
    // What was allowed (a.test's address, its resolver) is no refusal.
    expect(events.filter((e) => e.address === SERVER || e.name === 'a.test')).toEqual([]);
    expect(tsboxNflogGroups()).toEqual([]);
    expect(ownNetfilterSockets()).toEqual(before);
    expect(leftovers(c.id)).toEqual([]);
  });

  it('--report names each refused destination', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-report-'));
    try {
      const file = join(dir, 'report.json');
      const r = await allowlisted(['--allow-host', 'a.test', '--report', file], `${wget(`http://${SERVER2}:8080/`).join(' ')}; nslookup -type=a b.test >/dev/null 2>&1; tsbox-probe udp ${SERVER} 9999 01 >/dev/null; true`);
      expect(r.code).toBe(0);
      const report = JSON.parse(readFileSync(file, 'utf8')) as { network: { refused: RefusedSummary } };
      const names = report.network.refused.destinations.map((d) => `${d.protocol} ${d.address ?? d.name ?? ''}${d.port === null ? '' : `:${d.port}`}`);
      expect(names).toEqual(expect.arrayContaining([`tcp ${SERVER2}:8080`, 'dns b.test', `udp ${SERVER}:9999`]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a flood of refused packets gives a bounded report, rate-limited, and the run ends', async () => {
    const c = await spawnContainer(['sh', '-c', `for p in $(seq 1000 1999); do tsbox-probe udp ${SERVER2} $p 01 >/dev/null; done; echo done`], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER] });
    let events = 0;
    c.on('refused', () => (events += 1));
    const out: string[] = [];
    c.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
    const result = await c.wait();
    expect(out.join('')).toBe('done\n');
    const refused = result.network!.refused!;
    // 1000 refused, each to a port of its own: the kernel logs a burst and then 20 a second.
    expect(refused.total).toBeLessThan(1000);
    expect(refused.destinations).toHaveLength(MAX_DESTINATIONS);
    expect(refused.others).toBeGreaterThan(0);
    expect(refused.total).toBe(refused.destinations.reduce((n, d) => n + d.count, 0) + refused.others);
    expect(events).toBeLessThanOrEqual(refused.total);
    expect(tsboxNflogGroups()).toEqual([]);
    expect(leftovers(c.id)).toEqual([]);
  });

  it('in a warm pool: the pool\'s policy in each sandbox, built ahead; allowed name reached, others refused and reported; a call\'s allow refused; close() leaves no chain, rule, record or NFLOG group', async () => {
    const chainsNow = () => new Set([...iptablesSave().matchAll(/^:(TSBOX-[0-9a-f]+) /gm)].map((m) => m[1]!));
    const chainsBeforePool = chainsNow();
    const records = () => (existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((f) => f.endsWith('.json')) : []);
    const recordsBeforePool = new Set(records());
    const ids: string[] = [];
    {
      await using pool = createPool({ rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER], size: 1 });
      expect(await eventually(() => pool.stats().ready === 1, 15_000)).toBe(true);
      // Built ahead: its chain and its group are there before any call.
      expect(chainsNow().size).toBe(chainsBeforePool.size + 1);
      expect(tsboxNflogGroups()).toHaveLength(1);
      const r = await pool.run(['sh', '-c', `${wget('http://a.test/').join(' ')}; echo a=$?; ${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?; nslookup -type=a b.test >/dev/null 2>&1; echo b=$?`]);
      ids.push(r.id);
      expect(r.stdout).toContain('fake internet\na=0');
      expect(r.stdout).toMatch(/b-raw=[1-9]/);
      expect(r.stdout).toMatch(/b=[1-9]/);
      expect(r.network?.allow).toEqual([{ kind: 'host', name: 'a.test', port: null }]);
      expect(r.network?.refused?.destinations).toEqual(
        expect.arrayContaining([
          { protocol: 'tcp', address: SERVER2, port: 80, count: 1 },
          { protocol: 'dns', address: null, port: null, name: 'b.test', count: expect.any(Number) as number },
        ]),
      );
      // pool.spawn()'s handle emits them.
      const c = await pool.spawn(['sh', '-c', `tsbox-probe udp ${SERVER2} 7777 01 >/dev/null`]);
      ids.push(c.id);
      const events: RefusedConnection[] = [];
      c.on('refused', (e: RefusedConnection) => events.push(e));
      const done = await c.wait();
      expect(events).toContainEqual({ protocol: 'udp', address: SERVER2, port: 7777 });
      expect(done.network?.refused?.total).toBeGreaterThanOrEqual(1);
      // The policy is the pool's: a call's own is refused by name.
      await expect(pool.run(['true'], { allow: ['b.test'] } as never)).rejects.toMatchObject({ step: 'config', path: 'allow' });
      expect(await eventually(() => pool.stats().ready === 1, 15_000)).toBe(true);
    }
    for (const id of ids) expect(leftovers(id), id).toEqual([]);
    expect(chainsNow()).toEqual(chainsBeforePool);
    expect(new Set(records())).toEqual(recordsBeforePool);
    expect(tsboxNflogGroups()).toEqual([]);
  });

  it('is refused without bridge, before anything is made', async () => {
    const none = await cli(['run', '--rootfs', rootfs, '--allow-host', 'a.test', '--', 'true']);
    expect(none.code).toBe(125);
    expect(none.stderr).toContain('an egress allowlist is for a container on network "bridge", not "none"');
  });
});

describe('egress allowlist of a detached container (its keeper)', () => {
  const STATE = '/run/tsbox';
  interface KeeperRecord {
    keeper: { pid: number; start: string };
    monitor: { pid: number; start: string };
  }
  const keeperRecord = (id: string) => join(NETWORK_DIR, `${id}.keeper.json`);
  const readKeeper = (id: string) => JSON.parse(readFileSync(keeperRecord(id), 'utf8')) as KeeperRecord;
  const detached = async (extra: string[] = []) => {
    const r = await cli(['run', '-d', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', ...extra, '--', 'sleep', '60']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    return id;
  };
  /** The NFLOG group its chain logs to (its keeper bound it). */
  const groupOf = (id: string) => Number(new RegExp(`^-A TSBOX-${id.slice(0, 12)} .*--nflog-group (\\d+)`, 'm').exec(iptablesSave())?.[1] ?? NaN);
  /** What of the allowlist of container `id` is on the host: its chain, its rules, its keeper (by record, and by process). */
  const allowlistLeft = (id: string, keeperPid: number, group: number) => {
    const found: string[] = [];
    const saved = iptablesSave();
    if (saved.includes(`TSBOX-${id.slice(0, 12)}`)) found.push('chain');
    if (saved.includes(`tsbox:${id}`)) found.push('rule');
    if (existsSync(keeperRecord(id))) found.push('keeper record');
    if (alive(keeperPid)) found.push('keeper');
    if (tsboxNflogGroups().includes(group)) found.push(`NFLOG group ${group}`);
    return found;
  };
  const probes = [
    `${wget('http://a.test/').join(' ')}; echo a=$?`,
    `${wget('http://b.test/').join(' ')}; echo b=$?`,
    `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
  ].join('; ');
  const inspect = async (id: string) => {
    const r = await cli(['inspect', id]);
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { status: string; network: { refused?: RefusedSummary } }[])[0]!;
  };

  it('holds after the CLI has exited: the allowed name reached, the other refused by name and by address; inspect shows the refusals; nothing is left once it ends and is removed', async () => {
    const id = await detached();
    // The CLI is gone; its keeper is no child of this process, and runs on.
    const { keeper } = readKeeper(id);
    expect(alive(keeper.pid)).toBe(true);
    expect(readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8')).toContain('keeper.cjs');
    // Its command line, which every user may read, names the container only, not its allowlist.
    expect(readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8')).not.toContain('a.test');
    expect(readFileSync(`/proc/${keeper.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]).not.toBe(String(process.pid));
    const group = groupOf(id);
    expect(tsboxNflogGroups()).toContain(group);
    const r = await cli(['exec', id, 'sh', '-c', probes]);
    // Its keeper writes what was refused into its state (at most once a second): inspect shows it.
    await expectKeptRefusals(r, () => inspect(id));
    // It ends: its allowlist goes with it (the keeper sees its monitor go).
    expect((await cli(['kill', '-s', 'KILL', id])).code).toBe(0);
    expect(await eventually(() => allowlistLeft(id, keeper.pid, group).length === 0, 10_000)).toBe(true);
    expect(allowlistLeft(id, keeper.pid, group)).toEqual([]);
    // A stopped container's state keeps what was refused, until rm.
    const stopped = await inspect(id);
    expect(stopped.status).toBe('stopped');
    expect(stopped.network.refused?.total).toBeGreaterThanOrEqual(2);
    expect((await cli(['rm', id])).code).toBe(0);
    expect(existsSync(join(STATE, id))).toBe(false);
    expect(leftovers(id)).toEqual([]);
  });

  it('ends with its container (API detach: true): what was refused up to its end is in its state; nothing of the allowlist is left, and nothing at all after remove()', async () => {
    const c = await spawnContainer(['sh', '-c', `sleep 1; ${wget(`http://${SERVER2}:8080/`).join(' ')}; tsbox-probe udp ${SERVER2} 6001 01 >/dev/null; exit 0`], { rootfs, network: 'bridge', allow: ['a.test'], dns: [SERVER], detach: true });
    const { keeper } = readKeeper(c.id);
    const group = groupOf(c.id);
    const ref = open(c.id);
    expect(await ref.wait()).toMatchObject({ exitCode: 0 });
    expect(await eventually(() => allowlistLeft(c.id, keeper.pid, group).length === 0, 10_000)).toBe(true);
    // Its last refusal came just before its end: the keeper wrote it as it ended.
    expect(ref.state().network?.refused?.destinations).toEqual(
      expect.arrayContaining([
        { protocol: 'tcp', address: SERVER2, port: 8080, count: 1 },
        { protocol: 'udp', address: SERVER2, port: 6001, count: 1 },
      ]),
    );
    await ref.remove();
    await c.wait().catch(() => {});
    expect(existsSync(join(STATE, c.id))).toBe(false);
    expect(leftovers(c.id)).toEqual([]);
  });

  it('rm -f of a running one leaves nothing: container, keeper, chain, rules, NFLOG group, state', async () => {
    const id = await detached();
    const { keeper } = readKeeper(id);
    const group = groupOf(id);
    expect(allowlistLeft(id, keeper.pid, group)).toEqual(['chain', 'rule', 'keeper record', 'keeper', `NFLOG group ${group}`]);
    expect((await cli(['rm', '-f', id])).code).toBe(0);
    expect(allowlistLeft(id, keeper.pid, group)).toEqual([]);
    expect(existsSync(join(STATE, id))).toBe(false);
    expect(leftovers(id)).toEqual([]);
  });

  it('kill -9 of its keeper: its guard on the control socket goes, and the container with it; gc removes its rules; rm leaves nothing', async () => {
    const id = await detached();
    const { keeper, monitor } = readKeeper(id);
    const group = groupOf(id);
    // The keeper holds a guard connection on the container's control socket.
    expect(await eventually(() => guarding(keeper.pid), 10_000)).toBe(true);
    expect(alive(monitor.pid)).toBe(true);
    process.kill(keeper.pid, 'SIGKILL');
    expect(await eventually(() => !alive(keeper.pid), 5_000)).toBe(true);
    // The container does not outlive its policy: nothing answers at its DNS port, or can take it.
    expect(await eventually(() => !alive(monitor.pid), 10_000)).toBe(true);
    expect(await inspect(id)).toMatchObject({ status: 'stopped', exitSignal: 9 });
    // Its rules stay until gc, which removes them (its container is gone: no one to kill).
    expect(iptablesSave()).toContain(`TSBOX-${id.slice(0, 12)}`);
    const gc = await cli(['gc']);
    expect(gc.code).toBe(0);
    expect(gc.stderr).not.toContain('was killed');
    expect(allowlistLeft(id, keeper.pid, group)).toEqual([]);
    expect((await cli(['rm', id])).code).toBe(0);
    expect(existsSync(join(STATE, id))).toBe(false);
    expect(leftovers(id)).toEqual([]);
  });

  it('a launch that fails after its keeper was ready leaves no keeper, chain, rule, NFLOG group, record or state', async () => {
    const keepers = () => (existsSync(NETWORK_DIR) ? readdirSync(NETWORK_DIR).filter((f) => f.endsWith('.keeper.json')) : []);
    const states = () => new Set(readdirSync(STATE).filter((n) => /^[0-9a-f]{64}$/.test(n)));
    const chains = () => new Set([...iptablesSave().matchAll(/^:(TSBOX-[0-9a-f]+) /gm)].map((m) => m[1]!));
    const groupsBefore = new Set(tsboxNflogGroups());
    const statesBefore = states();
    const chainsBefore = chains();
    const keepersBefore = new Set(keepers());
    const keeperProcs = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (() => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('keeper.cjs');
      } catch {
        return false;
      }
    })());
    const procsBefore = new Set(keeperProcs());
    const r = await cli(['run', '-d', '--trace', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', '/no/such/command']);
    expect(r.code).toBe(127);
    // (It failed after its keeper had said the allowlist held.)
    expect(r.stderr).toMatch(/network: allowlist keeper pid=\d+/);
    expect(keeperProcs().filter((p) => !procsBefore.has(p))).toEqual([]);
    expect(new Set(keepers())).toEqual(keepersBefore);
    expect(chains()).toEqual(chainsBefore);
    expect(tsboxNflogGroups().filter((g) => !groupsBefore.has(g))).toEqual([]);
    expect(states()).toEqual(statesBefore);
  });
});

/**
 * A detached allowlisted container's probes (a.test, then b.test by name
 * and by address) as `out` printed them, and what its keeper then wrote
 * into its state, read through `inspect` until the TCP refusal is there.
 */
async function expectKeptRefusals(out: { stdout: string; stderr: string }, inspect: () => Promise<{ network: { refused?: RefusedSummary } }>): Promise<void> {
  expect(out.stdout).toContain('fake internet\na=0');
  expect(out.stdout).toMatch(/b=[1-9]/);
  expect(out.stderr).toContain("wget: bad address 'b.test'");
  expect(out.stdout).toMatch(/b-raw=[1-9]/);
  expect(out.stderr).toContain(`wget: can't connect to remote host (${SERVER2}): Connection refused`);
  let refused: RefusedSummary | undefined;
  for (let i = 0; i < 50 && !refused?.destinations.some((d) => d.protocol === 'tcp'); i++) {
    await new Promise((res) => setTimeout(res, 100));
    refused = (await inspect()).network.refused;
  }
  expect(refused?.reporting).toBe(true);
  expect(refused?.destinations).toEqual(
    expect.arrayContaining([
      { protocol: 'tcp', address: SERVER2, port: 80, count: 1 },
      { protocol: 'dns', address: null, port: null, name: 'b.test', count: expect.any(Number) as number },
    ]),
  );
  expect(refused?.destinations.filter((d) => d.address === SERVER || d.name === 'a.test')).toEqual([]);
}

/** Whether process `pid` holds a connection on a container's control socket (SOCK_SEQPACKET): an allowlist keeper's guard. */
function guarding(pid: number): boolean {
  const r = spawnSync('ss', ['-xpH'], { encoding: 'utf8' });
  return r.stdout.split('\n').some((l) => l.startsWith('u_seq') && l.includes(`pid=${pid},`));
}

describe('as an ordinary user: bridge through pasta', () => {
  // pasta's daemons end as zombies of PID 1, which some test VMs never reap:
  // removed with userdel -f, which a zombie of the user does not stop.
  const name = `tsbox-net-${process.pid}`;
  let uid = 0;
  beforeAll(() => {
    sh('useradd', ['-M', '-s', '/bin/sh', name]);
    uid = Number(sh('id', ['-u', name]).trim());
  });
  afterAll(() => {
    sh('userdel', ['-f', name]);
    // Its state root (in /tmp, as an ordinary user's is): a later user given the same uid would find it.
    rmSync(join(tmpdir(), `tsbox-state-${uid}`), { recursive: true, force: true });
  });
  const user = { uid: () => uid };
  const env = () => ({ ...process.env, XDG_RUNTIME_DIR: '' });
  const as = (args: string[]) => cli(args, { uid: user.uid(), gid: user.uid(), env: env() });
  const pastas = () => sh('ps', ['-u', String(user.uid()), '-o', 'pid=,args=']).split('\n').filter((l) => l.includes('pasta'));
  const TUN = '/dev/net/tun';
  let tunMode = 0;

  beforeAll(() => {
    tunMode = statSync(TUN).mode & 0o777;
  });
  afterAll(() => {
    chmodSync(TUN, tunMode);
  });

  it('says so in one line when this user may not open /dev/net/tun (some VMs leave it 0600)', async () => {
    chmodSync(TUN, 0o600);
    const r = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`tsbox: network(${TUN}): EACCES — this user may not open the tun device`);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  // pasta needs the tun device as distributions leave it (0666): made so for
  // these tests only, and put back as it was.
  describe('with /dev/net/tun open to users', () => {
    beforeAll(() => chmodSync(TUN, 0o666));
    afterAll(() => chmodSync(TUN, tunMode));

    it("reaches the fake internet through pasta, with the host's address, and publishes a port on the host", async () => {
      const port = await freePort();
      // (A tmpfs to write in: the rootfs's directories belong to ids a single-id map leaves out.)
      const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--tmpfs', '/w', '--network', 'bridge', '-p', `${port}:8000`, '--', 'sh', '-c', `${wget(`http://${SERVER}/`).join(' ')}; ${wget(`http://${SERVER2}/`).join(' ')}; ip -o -4 addr show && echo rootless > /w/index.html && (httpd -f -p 8000 -h /w &) && sleep 0.5 && echo listening && exec sleep 60`], {
        uid: user.uid(),
        gid: user.uid(),
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const closed = new Promise((r) => child.once('close', r));
      try {
        expect(await eventually(() => out.includes('listening'), 10_000), `${out}${err}`).toBe(true);
        expect(out.match(/fake internet/g), out).toHaveLength(2);
        const body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
        expect(body).toBe('rootless\n');
        // pasta's interface has the address of the host's default-route interface.
        const dev = sh('ip', ['-o', '-4', 'route', 'show', 'default']).match(/ dev (\S+)/)![1]!;
        const hostAddr = sh('ip', ['-o', '-4', 'addr', 'show', 'dev', dev]).match(/inet (\S+)\//)![1];
        expect(out).toContain(`inet ${hostAddr}/`);
        expect(pastas()).toHaveLength(1);
      } finally {
        child.kill('SIGTERM');
        await closed;
      }
      expect(await eventually(() => pastas().length === 0, 5_000)).toBe(true);
    });

    it('-P publishes an exposed port through pasta on a free host port, shown by inspect, free again once the container is gone', async () => {
      const r = await as(['run', '-d', '--rootfs', rootfs, '--tmpfs', '/w', '--network', 'bridge', '--expose', '8000', '-P', '--', 'sh', '-c', 'echo pasta-exposed > /w/index.html && exec httpd -f -p 8000 -h /w']);
      expect(r.code, r.stderr).toBe(0);
      const id = r.stdout.trim();
      let port = 0;
      try {
        const state = (JSON.parse((await as(['inspect', id])).stdout) as { network: { driver: string; ports: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[] } }[])[0]!;
        expect(state.network.driver).toBe('pasta');
        expect(state.network.ports).toHaveLength(1);
        port = state.network.ports[0]!.hostPort;
        expect(state.network.ports[0]).toEqual({ hostIp: '', hostPort: port, containerPort: 8000, protocol: 'tcp' });
        let body = 'unreachable';
        for (let i = 0; i < 50 && body === 'unreachable'; i++) {
          body = await fetch(`http://127.0.0.1:${port}/`).then(
            (res) => res.text(),
            async () => (await new Promise((res) => setTimeout(res, 100)), 'unreachable'),
          );
        }
        expect(body).toBe('pasta-exposed\n');
      } finally {
        expect((await as(['rm', '-f', id])).code).toBe(0);
      }
      expect(await eventually(() => pastas().length === 0, 5_000)).toBe(true);
      // pasta's socket is closed: nothing listens on the port any more (the
      // connection the test made may linger in TIME-WAIT, which is no listener).
      expect(await eventually(() => sh('ss', ['-Hltn', `sport = :${port}`]).trim() === '', 5_000)).toBe(true);
    });

    it("does not lead the container's loopback or anything else to the host's 127.0.0.1", async () => {
      const server = createServer((sock) => sock.end('host-loopback\n'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as { port: number };
      try {
        const r = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--', 'sh', '-c', `timeout 3 nc 127.0.0.1 ${port} </dev/null; echo nc=$?`]);
        expect(r.code).toBe(0);
        expect(r.stdout).not.toContain('host-loopback');
        expect(r.stdout).toMatch(/nc=[1-9]/);
      } finally {
        server.close();
      }
    });

    describe('with an egress allowlist (its rules in the container\'s own namespace)', () => {
      /** What this user has running now (a zombie pasta of PID 1's is gone once reaped). */
      const processes = () => sh('ps', ['-u', String(user.uid()), '-o', 'pid=,stat=,args=']).split('\n').filter((l) => l.trim() !== '' && !/^\s*\d+\s+Z/.test(l) && !l.endsWith('tsbox.js gc'));
      const records = () => {
        const dir = join(tmpdir(), `tsbox-state-${user.uid()}`, 'network');
        return existsSync(dir) ? readdirSync(dir) : [];
      };

      it('--allow-host a.test: reaches a.test; b.test has no name, and its address, UDP elsewhere and the host\'s loopback are refused at once; --report names them; nothing is left', async () => {
        const loopback = createServer((sock) => sock.end('host-loopback\n'));
        await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
        const { port } = loopback.address() as { port: number };
        const dir = mkdtempSync(join(tmpdir(), 'tsbox-report-'));
        chmodSync(dir, 0o777);
        try {
          const file = join(dir, 'report.json');
          const t0 = Date.now();
          const r = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--report', file, '--', 'sh', '-c', [
            'cat /etc/resolv.conf',
            `${wget('http://a.test/').join(' ')}; echo a=$?`,
            `${wget('http://b.test/').join(' ')}; echo b=$?`,
            `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
            `tsbox-probe udp ${SERVER2} 5353 01`,
            `timeout 3 nc 127.0.0.1 ${port} </dev/null; echo loopback=$?`,
            // The resolver's own port is forwarded from the container's port 53 only.
            `tsbox-probe udp 127.0.0.1 53 01 >/dev/null; echo probe=$?`,
          ].join('; ')]);
          const took = Date.now() - t0;
          expect(r.code, r.stderr).toBe(0);
          // Its resolv.conf names the resolver's forward only (where the
          // rootfs has one to mount over; without, 127.0.0.1 is every libc's default).
          expect(r.stdout.match(/^nameserver .*$/gm) ?? ['nameserver 127.0.0.1']).toEqual(['nameserver 127.0.0.1']);
          expect(r.stdout).toContain('fake internet\na=0');
          expect(r.stdout).toMatch(/b=[1-9]/);
          expect(r.stderr).toContain("wget: bad address 'b.test'");
          expect(r.stdout).toMatch(/b-raw=[1-9]/);
          expect(r.stderr).toContain(`wget: can't connect to remote host (${SERVER2}): Connection refused`);
          // Refused on its way out (the kernel's answer to a REJECT in OUTPUT).
          expect(r.stdout).toContain('{"error":"Operation not permitted (os error 1)","sent":null}');
          expect(r.stdout).toMatch(/loopback=[1-9]/);
          expect(r.stdout).not.toContain('host-loopback');
          // Refused at once, not left to time out (wget's and nc's bounds are 5 and 3 seconds).
          expect(r.stderr).not.toContain('Terminated');
          expect(took).toBeLessThan(10_000);
          const report = JSON.parse(readFileSync(file, 'utf8')) as { network: { driver: string; allow: unknown; refused: RefusedSummary } };
          expect(report.network.driver).toBe('pasta');
          expect(report.network.allow).toEqual([{ kind: 'host', name: 'a.test', port: null }]);
          expect(report.network.refused.reporting).toBe(true);
          const names = report.network.refused.destinations.map((d) => `${d.protocol} ${d.address ?? d.name ?? ''}${d.port === null ? '' : `:${d.port}`}`);
          expect(names).toEqual(expect.arrayContaining([`tcp ${SERVER2}:80`, 'dns b.test', `udp ${SERVER2}:5353`]));
          // What was allowed (a.test's address, its loopback) is no refusal.
          expect(names.filter((n) => n.includes(SERVER) && !n.startsWith('udp') || n.includes('a.test') || n.includes('127.0.0.1'))).toEqual([]);
        } finally {
          loopback.close();
          rmSync(dir, { recursive: true, force: true });
        }
        // No pasta, process, record or socket of the run's is left.
        expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
        expect(records()).toEqual([]);
      });

      it("with the API: 'refused' events and the result's network.refused, nothing for what is allowed, and no socket left", async () => {
        const dir = mkdtempSync(join(tmpdir(), 'tsbox-api-'));
        chmodSync(dir, 0o755);
        try {
          const script = join(dir, 'refused.mjs');
          const command = [`${wget('http://a.test/').join(' ')} >/dev/null`, `${wget(`http://${SERVER2}:8080/`).join(' ')}`, `tsbox-probe udp ${SERVER2} 5353 01 >/dev/null`, 'nslookup -type=a b.test >/dev/null 2>&1', 'true'].join('; ');
          writeFileSync(script, [
            `import { readdirSync, readlinkSync } from 'node:fs';`,
            `import { spawn } from ${JSON.stringify(`${REPO}dist/tsbox.js`)};`,
            // This process's sockets (their inodes), before and after.
            `const sockets = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync('/proc/self/fd/' + fd); } catch { return ''; } }).filter((l) => l.startsWith('socket:')).length;`,
            `const before = sockets();`,
            `const c = await spawn(['sh', '-c', ${JSON.stringify(command)}], { rootfs: ${JSON.stringify(rootfs)}, network: 'bridge', allow: ['a.test'], dns: [${JSON.stringify(SERVER)}] });`,
            `const events = [];`,
            `c.on('refused', (e) => events.push(e));`,
            `const result = await c.wait();`,
            `console.log(JSON.stringify({ events, refused: result.network.refused, notices: c.notices, left: sockets() - before }));`,
          ].join('\n'));
          chmodSync(script, 0o644);
          const r = await runCommand(process.execPath, [script], { uid: user.uid(), gid: user.uid(), env: env() });
          expect(r.code, r.stderr).toBe(0);
          const out = JSON.parse(r.stdout) as { events: RefusedConnection[]; refused: RefusedSummary; notices: string[]; left: number };
          const expected = [
            { protocol: 'tcp', address: SERVER2, port: 8080 },
            { protocol: 'udp', address: SERVER2, port: 5353 },
            { protocol: 'dns', address: null, port: null, name: 'b.test' },
          ];
          for (const e of expected) expect(out.events).toContainEqual(e);
          for (const e of expected) expect(out.refused.destinations).toContainEqual({ ...e, count: expect.any(Number) as number });
          expect(out.refused.reporting).toBe(true);
          // (The notice of a user without subordinate ids may be there; none about reports.)
          expect(out.notices.filter((n) => n.includes('refused'))).toEqual([]);
          expect(out.events.filter((e) => e.address === SERVER || e.name === 'a.test')).toEqual([]);
          // The resolver's socket and the reader's are closed once the result is there.
          expect(out.left).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('--allow-net A.B.C.D/BITS:PORT: that address and port only; a resolved address lets nothing else through', async () => {
        const r = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-net', `${SERVER2}/32:80`, '--allow-host', 'a.test:80', '--', 'sh', '-c', [
          `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
          `${wget(`http://${SERVER2}:8080/`).join(' ')}; echo b-8080=$?`,
          `${wget('http://a.test/').join(' ')}; echo a=$?`,
          `${wget('http://a.test:8080/').join(' ')}; echo a-8080=$?`,
        ].join('; ')]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('fake internet\nb-raw=0');
        expect(r.stdout).toMatch(/b-8080=[1-9]/);
        expect(r.stdout).toContain('fake internet\na=0');
        expect(r.stdout).toMatch(/a-8080=[1-9]/);
      });

      it('its processes, exec\'d ones too, have neither CAP_NET_ADMIN nor CAP_NET_RAW: the rules stay, and --cap-add of either is refused', async () => {
        const name = `allow-caps-${process.pid}`;
        const child = spawn(process.execPath, [BIN, 'run', '--name', name, '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', 'sh', '-c', 'echo up; exec sleep 30'], { uid: user.uid(), gid: user.uid(), env: env(), stdio: ['ignore', 'pipe', 'ignore'] });
        const closed = new Promise((r) => child.once('close', r));
        try {
          expect(await firstLine(child.stdout)).toBe('up');
          // CapEff and CapBnd (bits 12, NET_ADMIN, and 13, NET_RAW), and what NET_ADMIN would do.
          const script = [
            "grep -E '^Cap(Eff|Bnd)' /proc/self/status",
            'ip link set lo down; echo lo-down=$?',
            'ip addr add 10.1.2.3/32 dev lo; echo addr=$?',
            `tsbox-probe syn eth0 02:00:00:00:00:01 ${SERVER2} 80`,
            `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`,
          ].join('; ');
          const e = await as(['exec', name, 'sh', '-c', script]);
          expect(e.code, e.stderr).toBe(0);
          for (const m of e.stdout.matchAll(/^Cap(?:Eff|Bnd):\s+([0-9a-f]+)$/gm)) expect(BigInt(`0x${m[1]!}`) & 0x3000n).toBe(0n);
          expect(e.stdout.match(/^Cap/gm)).toHaveLength(2);
          expect(e.stdout).toMatch(/lo-down=[1-9]/);
          expect(e.stdout).toMatch(/addr=[1-9]/);
          expect(e.stdout).toContain('socket(AF_PACKET): Operation not permitted');
          expect(e.stdout).toMatch(/b-raw=[1-9]/);
        } finally {
          child.kill('SIGTERM');
          await closed;
        }
        // (An exec's capAdd is refused as for root's containers: ts/runtime/container.ts, whatever the network.)
        for (const cap of ['NET_ADMIN', 'NET_RAW', 'ALL']) {
          const run = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--allow-host', 'a.test', '--cap-add', cap, '--', 'true']);
          expect(run.code).toBe(125);
          expect(run.stderr).toContain('cannot be added to a container with an egress allowlist');
        }
        expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
      });

      it('kill -9 of the caller: the container ends, gc ends its pasta, and nothing of the allowlist is left', async () => {
        const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', 'sh', '-c', 'echo up; exec sleep 60'], { uid: user.uid(), gid: user.uid(), env: env(), stdio: ['ignore', 'pipe', 'ignore'] });
        try {
          expect(await firstLine(child.stdout)).toBe('up');
          expect(pastas()).toHaveLength(1);
        } finally {
          child.kill('SIGKILL');
        }
        const ended = await eventually(() => {
          void as(['gc']);
          return processes().length === 0;
        }, 10_000);
        expect(ended, processes().join('\n')).toBe(true);
        expect(await eventually(() => records().length === 0, 5_000)).toBe(true);
      });

      describe('detached (its keeper, as the user)', () => {
        interface KeeperRecord {
          keeper: { pid: number; start: string };
          monitor: { pid: number; start: string };
        }
        const recordsDir = () => join(tmpdir(), `tsbox-state-${user.uid()}`, 'network');
        const readKeeper = (id: string) => JSON.parse(readFileSync(join(recordsDir(), `${id}.keeper.json`), 'utf8')) as KeeperRecord;
        // A test that fails leaves no container of the user's running (it would outlive the user).
        const started: string[] = [];
        afterEach(async () => {
          for (const id of started.splice(0)) await as(['rm', '-f', id]);
        });
        const detached = async () => {
          const r = await as(['run', '-d', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', 'sleep', '60']);
          // (Its stderr may have the note of a user without a cgroup of its own.)
          expect(r.stderr).not.toContain('tsbox: network');
          expect(r.code, r.stderr).toBe(0);
          const id = r.stdout.trim();
          expect(id).toMatch(/^[0-9a-f]{64}$/);
          started.push(id);
          return id;
        };
        const inspect = async (id: string) => {
          const r = await as(['inspect', id]);
          expect(r.code, r.stderr).toBe(0);
          return (JSON.parse(r.stdout) as { status: string; network: { refused?: RefusedSummary } }[])[0]!;
        };
        const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

        it('holds after the CLI has exited: a.test reached, b.test has no name, its address refused at once; inspect shows the refusals; kill and rm leave no keeper, pasta, record or process', async () => {
          const id = await detached();
          const { keeper } = readKeeper(id);
          expect(alive(keeper.pid)).toBe(true);
          expect(readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8')).toContain('keeper.cjs');
          // The user's own process, not root's, and no child of this one.
          expect(uidOf(keeper.pid)).toBe(user.uid());
          expect(readFileSync(`/proc/${keeper.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]).not.toBe(String(process.pid));
          expect(pastas()).toHaveLength(1);
          const t0 = Date.now();
          const e = await as(['exec', id, 'sh', '-c', [`${wget('http://a.test/').join(' ')}; echo a=$?`, `${wget('http://b.test/').join(' ')}; echo b=$?`, `${wget(`http://${SERVER2}/`).join(' ')}; echo b-raw=$?`].join('; ')]);
          const took = Date.now() - t0;
          expect(e.stderr).not.toContain('Terminated');
          expect(took).toBeLessThan(10_000);
          // The keeper writes what was refused into the state directory (at most once a second).
          await expectKeptRefusals(e, () => inspect(id));
          expect((await as(['kill', '-s', 'KILL', id])).code).toBe(0);
          // It sees the monitor go, and ends.
          expect(await eventually(() => !alive(keeper.pid), 10_000)).toBe(true);
          expect((await inspect(id)).network.refused?.total).toBeGreaterThanOrEqual(2);
          expect((await as(['rm', id])).code).toBe(0);
          expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
          expect(pastas()).toEqual([]);
          expect(records()).toEqual([]);
        });

        it('kill -9 of its keeper: the container goes with its guard, and tsbox gc ends its pasta; nothing is left', async () => {
          const id = await detached();
          const { keeper, monitor } = readKeeper(id);
          expect(await eventually(() => guarding(keeper.pid), 10_000)).toBe(true);
          process.kill(keeper.pid, 'SIGKILL');
          expect(await eventually(() => !alive(keeper.pid), 5_000)).toBe(true);
          // Nothing is left answering at its DNS port on the host's loopback: the container is gone too.
          expect(await eventually(() => !alive(monitor.pid), 10_000)).toBe(true);
          expect(await inspect(id)).toMatchObject({ status: 'stopped', exitSignal: 9 });
          const gc = await as(['gc']);
          // (Root's shared tsbox cgroups, which this user may not remove, are no failure of its gc.)
          expect(gc.code, gc.stderr).toBe(0);
          expect(gc.stderr).not.toContain('tsbox: network');
          expect(await eventually(() => pastas().length === 0, 5_000), pastas().join('\n')).toBe(true);
          expect((await as(['rm', id])).code).toBe(0);
          expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
          expect(records()).toEqual([]);
        });

        it('a launch that fails after its keeper was ready leaves no keeper, pasta, process or record', async () => {
          const r = await as(['run', '-d', '--trace', '--rootfs', rootfs, '--network', 'bridge', '--dns', SERVER, '--allow-host', 'a.test', '--', '/no/such/command']);
          expect(r.code).toBe(127);
          expect(r.stderr).toMatch(/network: allowlist keeper pid=\d+/);
          expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
          expect(records()).toEqual([]);
        });
      });

      it('a launch that fails after its allowlist was set up leaves no pasta, process or record', async () => {
        const r = await as(['run', '--rootfs', rootfs, '--network', 'bridge', '--allow-host', 'a.test', '--', '/no/such/command']);
        expect(r.code).toBe(127);
        expect(await eventually(() => processes().length === 0, 5_000), processes().join('\n')).toBe(true);
        expect(records()).toEqual([]);
      });
    });

    it('kill -9 of the caller: the container ends, and gc ends its pasta', async () => {
      const child = spawn(process.execPath, [BIN, 'run', '--rootfs', rootfs, '--network', 'bridge', '--', 'sh', '-c', 'echo up; exec sleep 60'], { uid: user.uid(), gid: user.uid(), env: env(), stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      try {
        // Its command runs: pasta is up (the network phase is before it).
        expect(await eventually(() => out.includes('up'), 10_000)).toBe(true);
        expect(pastas()).toHaveLength(1);
      } finally {
        child.kill('SIGKILL');
      }
      // Once its monitor has gone (it kills the container when its caller is gone).
      const ended = await eventually(() => {
        void as(['gc']);
        return pastas().length === 0;
      }, 10_000);
      expect(ended).toBe(true);
    });

    it('-p with an address and -p without, in either order: each port is bound where its own -p says', async () => {
      for (const localFirst of [true, false]) {
        const [local, any] = [await freePort(), await freePort()];
        const flags = [['-p', `127.0.0.1:${local}:8000`], ['-p', `${any}:8000`]];
        const r = await as(['run', '-d', '--rootfs', rootfs, '--tmpfs', '/w', '--network', 'bridge', ...(localFirst ? flags : flags.reverse()).flat(), '--', 'sh', '-c', 'echo both > /w/index.html && exec httpd -f -p 8000 -h /w']);
        expect(r.code, r.stderr).toBe(0);
        const id = r.stdout.trim();
        try {
          const listener = (port: number) => sh('ss', ['-Hltn', `sport = :${port}`]).trim().split(/\s+/)[3] ?? '';
          expect(await eventually(() => listener(local) !== '' && listener(any) !== '', 5_000)).toBe(true);
          expect(listener(local)).toBe(`127.0.0.1:${local}`);
          // Every address of the host (0.0.0.0, or * for both families), not loopback alone.
          expect(listener(any)).toMatch(new RegExp(`^(\\*|0\\.0\\.0\\.0|\\[::\\]):${any}$`));
          for (const port of [local, any]) {
            let body = 'unreachable';
            for (let i = 0; i < 50 && body === 'unreachable'; i++) {
              body = await fetch(`http://127.0.0.1:${port}/`).then(
                (res) => res.text(),
                async () => (await new Promise((res) => setTimeout(res, 100)), 'unreachable'),
              );
            }
            expect(body).toBe('both\n');
          }
        } finally {
          expect((await as(['rm', '-f', id])).code).toBe(0);
        }
      }
      expect(await eventually(() => pastas().length === 0, 5_000)).toBe(true);
    });
  });
});

/**
 * Networking's parts that need no root (issue 17): --network, -p, --expose and -P parsing,
 * the schema's checks, what each mode puts in the plan, resolv.conf for a
 * host behind systemd-resolved's stub, and the CNI configuration and calls.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn as spawnChild } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { containerArgs, REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT, splitArgs } from '../../ts/cli/args.js';
import { parseAllow, parseExpose, parseNetwork, parsePublish } from '../../ts/config/network.js';
import { addresses, forbiddenAnswer, inCidr, nxdomain, question, upstreamQuery } from '../../ts/network/dns.js';
import { checkBridgeFilter, upstreamOf } from '../../ts/network/egress.js';
import { MAX_DESTINATIONS, Refusals, type RefusedConnection } from '../../ts/network/refused.js';
import { parseRunInput, type RunOptions } from '../../ts/config/schema.js';
import { BRIDGE, bridgeConfList, cniPath, pluginInput, pluginTypes } from '../../ts/network/cni.js';
import { gcNetworks, networkInfo, portInUse, portTaken, samePort, type NetworkRecord } from '../../ts/network/bridge.js';
import { gcKeepers, keeperDirOf, keeperPath, keeperVerdict, NS_FDS, nsKeeperOps, parseKeeperArgs, removeKeeperRecord, writeKeeperRecord, type KeeperArgs, type KeeperOps, type KeeperRecord } from '../../ts/network/keeper.js';
import { withRefused, type ContainerState } from '../../ts/runtime/state.js';
import { prepareNetwork } from '../../ts/network/index.js';
import { publishAllPorts } from '../../ts/network/ports.js';
import { defaultInterface, findPasta, gcPasta, pastaArgs } from '../../ts/network/pasta.js';
import { addressRules, checkNsDescriptors, nsRules, NS_RESOLVER } from '../../ts/network/egress-ns.js';
import { portsOf, startResolver } from '../../ts/network/resolver.js';
import { buildPlan, buildProcessPlan, etcFiles, type PlanMount } from '../../ts/runtime/plan.js';
import { NETWORK_DIR } from '../../ts/network/records.js';
import { processStart } from '../../ts/proc.js';
import { rejection } from '../support/errors.js';

const fakeCompiler = { compileSeccomp: () => Buffer.from([0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]), seccompProblems: () => [] };

function sandbox(options: RunOptions, netnsPath: string | null = null) {
  const parsed = parseRunInput(['true'], options);
  return buildPlan(parsed.command, parsed.options, { hostname: 'box', traceT0Ns: 0n, planVersion: 7, idmap: false, seccomp: fakeCompiler, netnsPath }).sandbox;
}

describe('--network', () => {
  it("takes Docker's modes, a namespace path and a container's name", () => {
    expect(parseNetwork('none')).toEqual({ mode: 'none' });
    expect(parseNetwork('host')).toEqual({ mode: 'host' });
    expect(parseNetwork('bridge')).toEqual({ mode: 'bridge' });
    expect(parseNetwork('ns:/run/netns/blue')).toEqual({ mode: 'ns', path: '/run/netns/blue' });
    expect(parseNetwork('container:web-1')).toEqual({ mode: 'container', name: 'web-1' });
    for (const bad of ['', 'overlay', 'ns:relative', 'ns:', 'container:', 'container:../x', 'Bridge']) expect(parseNetwork(bad), bad).toBeUndefined();
  });

  it('defaults to none, and rejects a bad mode with its JSON path', () => {
    expect(parseRunInput(['true'], {}).options.network).toEqual({ mode: 'none' });
    const e = rejection(() => parseRunInput(['true'], { network: 'overlay' }));
    expect(e.path).toBe('network');
    expect(e.message).toContain('"overlay" is not a network: none, host, bridge, ns:PATH or container:NAME');
  });
});

describe('-p/--publish', () => {
  it('parses [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]', () => {
    expect(parsePublish('8080:80')).toEqual({ hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' });
    expect(parsePublish('127.0.0.1:18080:80/tcp')).toEqual({ hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'tcp' });
    expect(parsePublish('5353:53/udp')).toEqual({ hostIp: '', hostPort: 5353, containerPort: 53, protocol: 'udp' });
    expect(parsePublish('[::1]:8080:80')).toEqual({ hostIp: '::1', hostPort: 8080, containerPort: 80, protocol: 'tcp' });
  });

  it('refuses what is not that: one port, a range, port 0 or above 65535, a bad address or protocol', () => {
    for (const bad of ['80', '8080-8081:80', '0:80', '8080:65536', 'x:8080:80', '300.1.1.1:8080:80', '8080:80/sctp', '::1:8080:80', '1:2:3:4', '8080:80/']) expect(parsePublish(bad), bad).toBeUndefined();
  });

  it('refuses an IPv6 host address: the container has only an IPv4 one, so nothing would answer', async () => {
    const e = (await prepareNetwork({ mode: 'bridge' }, [parsePublish('[::1]:8080:80')!]).catch((err: unknown) => err)) as Error;
    expect(e.message).toBe('network([::1]:8080:80): EINVAL — a port cannot be published on an IPv6 address of the host yet: the container has only an IPv4 address');
  });

  it("knows a host port taken: by another container's publication (any address overlaps a given one), or by a listener of the host", async () => {
    const p = (s: string) => parsePublish(s)!;
    expect(samePort(p('8080:80'), p('127.0.0.1:8080:81'))).toBe(true);
    expect(samePort(p('127.0.0.1:8080:80'), p('127.0.0.2:8080:80'))).toBe(false);
    expect(samePort(p('8080:80'), p('8080:80/udp'))).toBe(false);
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as { port: number };
      const e = await portInUse([p(`${port}:80`)]);
      expect(e?.message).toBe(`network(${port}/tcp): EADDRINUSE — a process of the host listens on that port`);
      expect(await portInUse([p(`127.0.0.2:${port}:80`)])).toBeNull();
    } finally {
      server.close();
    }
  });

  it('publishes only from network bridge', () => {
    expect(parseRunInput(['true'], { network: 'bridge', publish: ['8080:80'] }).options.publish).toHaveLength(1);
    const e = rejection(() => parseRunInput(['true'], { publish: ['8080:80'] }));
    expect(e.path).toBe('publish');
    expect(e.message).toContain('publishes ports of a container on network "bridge", not "none"');
    expect(rejection(() => parseRunInput(['true'], { network: 'bridge', publish: ['80'] })).path).toBe('publish[0]');
  });

  it('reach the CLI as --network/--net, -p/--publish and --expose (repeatable), and -P/--publish-all', () => {
    const s = splitArgs(['--net', 'bridge', '-p', '8080:80', '--publish=127.0.0.1:9090:90/udp', '--expose', '80', '--expose=53/udp', '-P', 'true'], containerArgs, 'run', REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT);
    expect(s.values.get('network')).toBe('bridge');
    expect(s.values.get('publish')).toEqual(['8080:80', '127.0.0.1:9090:90/udp']);
    expect(s.values.get('expose')).toEqual(['80', '53/udp']);
    expect(s.values.get('publish-all')).toBe(true);
    expect(s.command).toEqual(['true']);
    expect(splitArgs(['--publish-all', '-d', 'true'], containerArgs, 'run', REFUSED_RUN_FLAGS, REFUSED_RUN_SHORT).values.get('publish-all')).toBe(true);
  });

  it('--expose takes PORT or FIRST-LAST, tcp or udp; publishAll needs network bridge', () => {
    expect(parseExpose('80')).toEqual([{ containerPort: 80, protocol: 'tcp' }]);
    expect(parseExpose('53/udp')).toEqual([{ containerPort: 53, protocol: 'udp' }]);
    expect(parseExpose('8000-8002/tcp')).toEqual([8000, 8001, 8002].map((containerPort) => ({ containerPort, protocol: 'tcp' })));
    for (const bad of ['', '0', '65536', '80/sctp', '90-80', '1-2000', 'http', '80:80', '-80']) expect(parseExpose(bad), bad).toBeUndefined();
    expect(parseRunInput(['true'], { expose: ['80', '53/udp'] }).options.expose).toEqual([[{ containerPort: 80, protocol: 'tcp' }], [{ containerPort: 53, protocol: 'udp' }]]);
    expect(parseRunInput(['true'], { network: 'bridge', publishAll: true }).options.publishAll).toBe(true);
    expect(rejection(() => parseRunInput(['true'], { expose: ['80/sctp'] })).path).toBe('expose[0]');
    for (const network of ['none', 'host', 'ns:/proc/1/ns/net']) {
      const e = rejection(() => parseRunInput(['true'], { network, publishAll: true, expose: ['80'] }));
      expect(e.path, network).toBe('publishAll');
      expect(e.message).toContain(`publishes the exposed ports of a container on network "bridge", not "${network.split(':')[0]}"`);
    }
  });

  it('publishAll picks a free host port for each exposed port -p leaves out, once each, passing over ports taken', async () => {
    const listening = createServer();
    await new Promise<void>((r) => listening.listen(0, '0.0.0.0', r));
    try {
      const held = (listening.address() as { port: number }).port;
      const skipped: number[] = [];
      const ports = await publishAllPorts(
        [parsePublish('8080:80')!],
        [...parseExpose('80')!, ...parseExpose('81')!, ...parseExpose('81')!, ...parseExpose('81/udp')!, ...parseExpose('82')!],
        (p) => {
          // The first offer for 82 is another container's, as far as this test says.
          if (p.containerPort === 82 && skipped.length === 0) {
            skipped.push(p.hostPort);
            return true;
          }
          return false;
        },
      );
      expect(ports.map((p) => [p.containerPort, p.protocol, p.hostIp])).toEqual([
        [81, 'tcp', ''],
        [81, 'udp', ''],
        [82, 'tcp', ''],
      ]);
      const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
      for (const p of ports) {
        expect(p.hostPort).toBeGreaterThanOrEqual(lo);
        expect(p.hostPort).toBeLessThanOrEqual(hi);
        expect(p.hostPort).not.toBe(held);
      }
      expect(ports[2]!.hostPort).not.toBe(skipped[0]);
      expect(new Set(ports.filter((p) => p.protocol === 'tcp').map((p) => p.hostPort)).size).toBe(2);
      // Released: free for what publishes it next.
      expect(await portInUse(ports)).toBeNull();
    } finally {
      listening.close();
    }
  });
});

describe('what each mode puts in the plan', () => {
  const sys = (p: ReturnType<typeof sandbox>) => p.mounts.find((m) => m.target === '/sys')!;

  it('none: a net namespace whose loopback the child brings up; sysfs of its own', () => {
    const p = sandbox({});
    expect(p.namespaces).toContain('net');
    expect(p.network).toBe('loopback');
    expect(p.join).toEqual([]);
    expect(sys(p)).toMatchObject({ type: 'fs', fstype: 'sysfs' });
  });

  it("bridge: Node's hook makes the interfaces (phase network)", () => {
    const p = sandbox({ network: 'bridge' });
    expect(p.namespaces).toContain('net');
    expect(p.network).toBe('node');
    expect(sys(p)).toMatchObject({ type: 'fs', fstype: 'sysfs' });
  });

  it("host: no net namespace; the host's /sys read-only, since a user namespace cannot mount sysfs over a netns it does not own", () => {
    const p = sandbox({ network: 'host' });
    expect(p.namespaces).not.toContain('net');
    expect(p.namespaces).toContain('user');
    expect(sys(p)).toMatchObject({ type: 'bind', source: '/sys', recursive: true, readonly: true });
    // Without a user namespace, sysfs can be mounted.
    expect(sys(sandbox({ network: 'host', userns: 'host' }))).toMatchObject({ type: 'fs', fstype: 'sysfs' });
  });

  it('ns:PATH and container:NAME join a namespace: the path given, or the descriptor launch holds', () => {
    expect(sandbox({ network: 'ns:/run/netns/blue' }).join).toEqual([{ ns: 'net', path: '/run/netns/blue' }]);
    const c = sandbox({ network: 'container:web' }, '/proc/42/fd/19');
    expect(c.join).toEqual([{ ns: 'net', path: '/proc/42/fd/19' }]);
    expect(c.network).toBe('loopback');
    expect(sys(c)).toMatchObject({ type: 'bind', source: '/sys' });
  });
});

describe('/etc/resolv.conf by mode', () => {
  const resolv = (mounts: PlanMount[]) => {
    const m = mounts.find((x) => x.target === '/etc/resolv.conf');
    return m?.type === 'file' ? m.contents : undefined;
  };

  it("behind systemd-resolved's stub (127.0.0.53 only): the upstream servers it forwards to; host mode keeps the stub", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-net-'));
    try {
      writeFileSync(join(dir, 'stub'), 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n');
      writeFileSync(join(dir, 'upstream'), '# resolved\nnameserver 192.168.1.1\nnameserver 127.0.0.1\nnameserver fd00::1\nsearch lan\n');
      expect(resolv(etcFiles('box', join(dir, 'stub'), { network: 'bridge' }, join(dir, 'upstream')))).toBe('options edns0 trust-ad\nsearch lan\nnameserver 192.168.1.1\nnameserver fd00::1\n');
      expect(resolv(etcFiles('box', join(dir, 'stub'), { network: 'host' }, join(dir, 'upstream')))).toBe('nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n');
      // --dns wins over both.
      expect(resolv(etcFiles('box', join(dir, 'stub'), { network: 'bridge', dns: ['10.0.0.53'] }, join(dir, 'upstream')))).toBe('options edns0 trust-ad\nsearch lan\nnameserver 10.0.0.53\n');
      // No upstream list: no nameserver rather than one that cannot answer.
      expect(resolv(etcFiles('box', join(dir, 'stub'), { network: 'bridge' }, join(dir, 'missing')))).toBe('options edns0 trust-ad\nsearch lan\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the CNI configuration and calls', () => {
  it('is a bridge on tsbox0 with NAT, host-local leases in tsbox state, portmap, firewall and tuning', () => {
    const list = bridgeConfList('/run/tsbox/network/ipam');
    expect(list.name).toBe('tsbox');
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    expect(list.plugins[0]).toMatchObject({ bridge: 'tsbox0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir: '/run/tsbox/network/ipam', ranges: [[{ subnet: '10.89.0.0/16' }]] } });
    // Not podman's default network.
    expect(BRIDGE.subnet).not.toMatch(/^10\.88\./);
    expect(pluginTypes(list)).toEqual(['bridge', 'host-local', 'portmap', 'firewall', 'tuning']);
    // With an allowlist, tuning turns IPv6 off in the container (its rules are IPv4's).
    expect(bridgeConfList('/x', { ipv6Off: true }).plugins[3]).toEqual({ type: 'tuning', sysctl: { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' } });
  });

  it('finds the plugins, and names the package when one is missing', () => {
    const list = bridgeConfList('/x');
    const have = new Set(['/usr/lib/cni', ...pluginTypes(list).map((t) => `/usr/lib/cni/${t}`)]);
    expect(cniPath(list, ['/usr/lib/cni', '/opt/cni/bin'], (p) => have.has(p))).toBe('/usr/lib/cni');
    have.delete('/usr/lib/cni/portmap');
    const e = rejection(() => cniPath(list, ['/usr/lib/cni', '/opt/cni/bin'], (p) => have.has(p)));
    expect(e.step).toBe('network');
    expect(e.message).toBe('network(portmap): ENOENT — the CNI plugin "portmap" is not installed (looked in /usr/lib/cni, /opt/cni/bin)');
    expect(e.hint).toContain('containernetworking-plugins');
  });

  it("gives each plugin the list's name and version, the previous result, and the ports only to the one that declares them", () => {
    const list = bridgeConfList('/x');
    const ports = [{ hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'tcp' as const }];
    const prev = { cniVersion: '1.0.0', ips: [] };
    expect(pluginInput(list, list.plugins[0]!, undefined, ports)).not.toHaveProperty('prevResult');
    expect(pluginInput(list, list.plugins[0]!, undefined, ports)).not.toHaveProperty('runtimeConfig');
    expect(pluginInput(list, list.plugins[1]!, prev, ports)).toMatchObject({
      cniVersion: '1.0.0',
      name: 'tsbox',
      type: 'portmap',
      prevResult: prev,
      runtimeConfig: { portMappings: [{ hostIP: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'tcp' }] },
    });
  });

  it("reads the container's interface and address out of a result", () => {
    const result = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'tsbox0', mac: 'aa:aa:aa:aa:aa:aa' }, { name: 'veth1234', mac: 'bb:bb:bb:bb:bb:bb' }, { name: 'eth0', mac: 'cc:cc:cc:cc:cc:cc', sandbox: '/proc/9/fd/20' }],
      ips: [{ interface: 2, address: '10.89.0.7/16', gateway: '10.89.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
    };
    expect(networkInfo(result, [])).toEqual({
      mode: 'bridge',
      driver: 'cni',
      interfaces: [{ name: 'eth0', mac: 'cc:cc:cc:cc:cc:cc', addresses: ['10.89.0.7/16'] }],
      gateway: '10.89.0.1',
      hostInterface: 'veth1234',
      bridge: 'tsbox0',
      ports: [],
    });
  });
});

describe("an ordinary user's bridge: pasta", () => {
  it('publishes the ports asked for, and nothing from the container to the host\'s loopback', () => {
    const ports = [
      { hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' as const },
      { hostIp: '127.0.0.1', hostPort: 8443, containerPort: 443, protocol: 'tcp' as const },
      { hostIp: '', hostPort: 5353, containerPort: 53, protocol: 'udp' as const },
    ];
    expect(pastaArgs(42, ports, '/s/x.pasta.pid')).toEqual(['--config-net', '--quiet', '--no-map-gw', '-t', '8080:80', '-t', '127.0.0.1/8443:443', '-u', '5353:53', '-T', 'none', '-U', 'none', '-P', '/s/x.pasta.pid', '42']);
    expect(pastaArgs(42, [], '/p')).toEqual(['--config-net', '--quiet', '--no-map-gw', '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '-P', '/p', '42']);
  });

  it("with an allowlist: IPv4 only, and of the host's loopback the resolver's port alone, from the container's port 53", () => {
    expect(pastaArgs(42, [], '/p', 40123)).toEqual(['--config-net', '--quiet', '--no-map-gw', '-t', 'none', '-u', 'none', '-T', 'none', '-4', '-U', '53:40123', '-P', '/p', '42']);
  });

  it("with an allowlist: rules in the container's namespace refuse everything but loopback, established traffic and what is allowed", () => {
    const { v4, v6 } = nsRules([{ kind: 'host', name: 'a.test', port: null }, { kind: 'net', cidr: '10.1.0.0/16', port: 5432 }], 47001);
    expect(v4.split('\n')).toEqual([
      '*filter',
      ':OUTPUT DROP [0:0]',
      '-A OUTPUT -o lo -j ACCEPT',
      '-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-A OUTPUT -d 10.1.0.0/16 -p tcp -m tcp --dport 5432 -j ACCEPT',
      '-A OUTPUT -d 10.1.0.0/16 -p udp -m udp --dport 5432 -j ACCEPT',
      '-A OUTPUT -m limit --limit 20/sec --limit-burst 40 -j NFLOG --nflog-group 47001 --nflog-size 68',
      '-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset',
      '-A OUTPUT -j REJECT --reject-with icmp-port-unreachable',
      'COMMIT',
      '',
    ]);
    // Without a reader: no NFLOG rule, the rest the same.
    expect(nsRules([], null).v4).not.toContain('NFLOG');
    // IPv6: loopback only, whatever is allowed.
    expect(v6).toBe('*filter\n:OUTPUT DROP [0:0]\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset\n-A OUTPUT -j REJECT --reject-with icmp6-port-unreachable\nCOMMIT\n');
    // A resolved address: after loopback and established traffic, and taken back as it was put.
    expect(addressRules('10.199.0.2', [null], true)).toBe('*filter\n-I OUTPUT 3 -d 10.199.0.2/32 -j ACCEPT\nCOMMIT\n');
    expect(addressRules('10.199.0.2', [80], false)).toBe('*filter\n-D OUTPUT -d 10.199.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT\n-D OUTPUT -d 10.199.0.2/32 -p udp -m udp --dport 80 -j ACCEPT\nCOMMIT\n');
    expect(NS_RESOLVER).toBe('127.0.0.1');
  });

  it('names the package when pasta is missing, and says when /dev/net/tun is closed to the user', () => {
    const e = rejection(() => findPasta(['/nowhere'], () => false));
    expect(e.message).toBe('network(pasta): ENOENT — pasta is not installed (looked in /nowhere); an ordinary user\'s bridged container needs it');
    expect(e.hint).toContain('passt');
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-unit-net-'));
    try {
      writeFileSync(join(dir, 'tun'), '');
      expect(findPasta(['/usr/bin'], (p) => p === '/usr/bin/pasta', join(dir, 'tun'))).toBe('/usr/bin/pasta');
      const closed = rejection(() => findPasta(['/usr/bin'], (p) => p === '/usr/bin/pasta', join(dir, 'missing-tun')));
      expect(closed.path).toBe(join(dir, 'missing-tun'));
      expect(closed.message).toContain('this user may not open the tun device');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds the host's default-route interface in /proc/net/route", () => {
    const routes = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' + 'eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' + 'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n';
    expect(defaultInterface(routes)).toBe('eth0');
    expect(defaultInterface(routes.split('\n').slice(0, 2).join('\n'))).toBeNull();
  });

  it('gives each published port an option of its own, so an address binds only its own port, in either order', () => {
    const local = { hostIp: '127.0.0.1', hostPort: 8443, containerPort: 443 };
    const any = { hostIp: '', hostPort: 8080, containerPort: 80 };
    for (const protocol of ['tcp', 'udp'] as const) {
      const [flag, other] = protocol === 'tcp' ? ['-t', '-u'] : ['-u', '-t'];
      for (const order of [[local, any], [any, local]]) {
        const args = pastaArgs(42, order.map((p) => ({ ...p, protocol })), '/p');
        const specs = args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));
        expect(specs).toEqual(order.map((p) => (p.hostIp ? `${p.hostIp}/${p.hostPort}:${p.containerPort}` : `${p.hostPort}:${p.containerPort}`)));
        expect(args.flatMap((a, i) => (args[i - 1] === other ? [a] : []))).toEqual(['none']);
      }
    }
  });
});

describe('the egress allowlist', () => {
  it('takes NAME[:PORT] and A.B.C.D[/BITS][:PORT]', () => {
    expect(parseAllow('API.Example.org')).toEqual({ kind: 'host', name: 'api.example.org', port: null });
    expect(parseAllow('example.com:443')).toEqual({ kind: 'host', name: 'example.com', port: 443 });
    expect(parseAllow('10.1.0.0/16:5432')).toEqual({ kind: 'net', cidr: '10.1.0.0/16', port: 5432 });
    expect(parseAllow('192.0.2.7')).toEqual({ kind: 'net', cidr: '192.0.2.7/32', port: null });
    for (const bad of ['', 'a..b', '-x.org', 'x.org:0', 'x.org:70000', '10.0.0.0/33', '300.1.1.1', 'fd00::1', 'a b', 'x.org:']) expect(parseAllow(bad), bad).toBeUndefined();
  });

  it('is for a bridged container, attached or detached', () => {
    expect(parseRunInput(['true'], { network: 'bridge', allow: ['a.test'] }).options.allow).toHaveLength(1);
    expect(rejection(() => parseRunInput(['true'], { allow: ['a.test'] })).message).toContain('an egress allowlist is for a container on network "bridge", not "none"');
    expect(parseRunInput(['true'], { network: 'bridge', detach: true, allow: ['a.test'] }).options).toMatchObject({ detach: true, allow: [{ kind: 'host', name: 'a.test', port: null }] });
    expect(rejection(() => parseRunInput(['true'], { network: 'bridge', allow: ['nope nope'] })).path).toBe('allow[0]');
  });

  it('reaches the CLI as --allow-host and --allow-net, repeatable and comma-separated', () => {
    const s = splitArgs(['--allow-host', 'a.test,b.test:443', '--allow-host', 'c.test', '--allow-net', '10.0.0.0/8', 'true'], containerArgs, 'run');
    expect(s.values.get('allow-host')).toEqual(['a.test,b.test:443', 'c.test']);
    expect(s.values.get('allow-net')).toEqual(['10.0.0.0/8']);
  });

  it("asks --dns's first server, or the host's first (its loopback is the resolver's too)", () => {
    expect(upstreamOf(['10.0.0.53'], '/x', () => 'nameserver 1.2.3.4')).toBe('10.0.0.53');
    expect(upstreamOf([], '/x', () => '# x\nnameserver 127.0.0.53\noptions edns0\n')).toBe('127.0.0.53');
    expect(upstreamOf([], '/x', () => '')).toBeNull();
  });

  // A query for a.test (type A) and an answer with a compressed name and two records, one an A.
  const query = Buffer.from('123401000001000000000000' + '016104746573740000010001', 'hex');
  const answer = Buffer.concat([
    Buffer.from('123481800001000200000000' + '016104746573740000010001', 'hex'),
    Buffer.from('c00c000500010000003c0002c00c', 'hex'), // CNAME a.test -> a.test (pointer), TTL 60
    Buffer.from('c00c00010001000001000004' + '0ac70002', 'hex'), // A 10.199.0.2, TTL 256
  ]);

  it('reads a query\'s question, answers NXDOMAIN to it, and reads the A records of an answer', () => {
    expect(question(query)).toEqual({ name: 'a.test', type: 1 });
    expect(question(Buffer.from('1234', 'hex'))).toBeNull();
    const nx = nxdomain(query)!;
    expect(nx.readUInt16BE(0)).toBe(0x1234);
    expect(nx[2]! & 0x80).toBe(0x80);
    expect(nx[3]! & 0x0f).toBe(3);
    expect(nx.readUInt16BE(4)).toBe(1);
    expect(nx.readUInt16BE(6)).toBe(0);
    expect(question(nx)).toEqual({ name: 'a.test', type: 1 });
    expect(addresses(answer)).toEqual([{ address: '10.199.0.2', ttl: 256 }]);
    expect(addresses(answer.subarray(0, answer.length - 2))).toEqual([]);
  });

  it('has no answer for what is not a query: shorter than a header, or an answer itself (a container could send either)', () => {
    expect(nxdomain(Buffer.from([1]))).toBeNull();
    expect(nxdomain(Buffer.alloc(11))).toBeNull();
    const header = Buffer.alloc(12);
    header[2] = 0x80;
    expect(nxdomain(header)).toBeNull();
    // A question that says it has more bytes than it has: the header alone comes back.
    const cut = Buffer.concat([Buffer.alloc(12), Buffer.from([5, 0x61])]);
    cut.writeUInt16BE(1, 4);
    expect(nxdomain(cut)?.length).toBe(12);
  });
});

describe('an allowlisted container has no raw sockets', () => {
  const allowed = { network: 'bridge', allow: ['a.test'] } as const;

  it('CAP_NET_RAW is not in any of its sets (with it, it would write frames from any address, around the rules)', () => {
    const { command, options } = parseRunInput(['true'], allowed);
    const caps = buildProcessPlan(command, options, 'box', fakeCompiler).capabilities!;
    for (const set of [caps.bounding, caps.effective, caps.permitted]) expect(set).not.toContain('CAP_NET_RAW');
    expect(caps.bounding).toContain('CAP_NET_BIND_SERVICE');
    // Without an allowlist, the default set keeps it (Docker's).
    const plain = parseRunInput(['true'], { network: 'bridge' });
    expect(buildProcessPlan(plain.command, plain.options, 'box', fakeCompiler).capabilities!.bounding).toContain('CAP_NET_RAW');
  });

  it('refuses --cap-add NET_RAW, NET_ADMIN or ALL with it', () => {
    for (const cap of ['NET_RAW', 'cap_net_admin', 'ALL']) {
      const e = rejection(() => parseRunInput(['true'], { ...allowed, capAdd: [cap] }));
      expect(e.path).toBe('capAdd');
      expect(e.message).toContain('an egress allowlist');
    }
  });
});

describe('an allowlist needs iptables to see bridged traffic', () => {
  it('is refused when br_netfilter is not loaded or bridge-nf-call-iptables is off, and the host is left as it is', () => {
    const off = rejection(() => checkBridgeFilter(() => '0\n'));
    expect(off.path).toBe('/proc/sys/net/bridge/bridge-nf-call-iptables');
    expect(off.message).toContain('it is off');
    const absent = rejection(() => checkBridgeFilter(() => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    }));
    expect(absent.message).toContain('br_netfilter is not loaded');
    expect(() => checkBridgeFilter(() => '1\n')).not.toThrow();
  });
});

describe('what the allowlist resolver asks upstream, and what answers it refuses', () => {
  /** A query for `name`: id 0x4242, RD, one question of type A, class IN, then `extra` bytes. */
  const query = (name: string, opts: { flags?: number; qd?: number; cls?: number; ar?: number; extra?: number[] } = {}) => {
    const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
    const b = Buffer.from([0x42, 0x42, opts.flags ?? 0x01, 0, 0, opts.qd ?? 1, 0, 0, 0, 0, 0, opts.ar ?? 0, ...labels, 0, 0, 1, 0, opts.cls ?? 1, ...(opts.extra ?? [])]);
    return b;
  };

  it('asks a query built anew: its id, RD, its one question; no records or options of the container\'s', () => {
    const opt = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    const q = query('A.Test', { ar: 1, extra: opt, flags: 0x01 | 0x04 /* AA, which a query does not set */ });
    const up = upstreamQuery(q)!;
    expect(up).toEqual(query('a.test'));
    expect(question(up)).toEqual({ name: 'a.test', type: 1 });
  });

  it('asks nothing for a response, another opcode, two questions, or another class', () => {
    expect(upstreamQuery(query('a.test', { flags: 0x81 }))).toBeNull();
    expect(upstreamQuery(query('a.test', { flags: 0x01 | (5 << 3) }))).toBeNull(); // UPDATE
    expect(upstreamQuery(query('a.test', { qd: 2 }))).toBeNull();
    expect(upstreamQuery(query('a.test', { cls: 3 }))).toBeNull(); // CHAOS
    expect(upstreamQuery(Buffer.from([1]))).toBeNull();
  });

  it('refuses answers on the host, its loopback, link-local, the bridge or any network that is not the internet, unless --allow-net names them', () => {
    expect(inCidr('10.89.3.4', '10.89.0.0/16')).toBe(true);
    expect(inCidr('10.90.0.1', '10.89.0.0/16')).toBe(false);
    expect(inCidr('200.1.2.3', '0.0.0.0/0')).toBe(true);
    const own = ['192.0.2.7'];
    for (const a of ['127.0.0.1', '127.9.9.9', '169.254.169.254', '10.89.0.1', '10.89.0.77', '0.0.0.0', '192.0.2.7']) expect(forbiddenAnswer(a, '10.89.0.0/16', own, [])).toBe(true);
    // DNS rebinding: an allowlisted name whose DNS someone else runs must not lead to the LAN, another bridge, a carrier's NAT, multicast or broadcast.
    for (const a of ['10.199.0.2', '10.0.0.1', '172.16.0.1', '172.31.255.254', '192.168.1.1', '100.64.0.1', '100.127.255.1', '224.0.0.251', '239.1.2.3', '240.0.0.1', '255.255.255.255']) expect(forbiddenAnswer(a, '10.89.0.0/16', own, []), a).toBe(true);
    // The internet's addresses next to them are answers like any other.
    for (const a of ['198.51.100.2', '203.0.113.9', '172.32.0.1', '172.15.255.1', '192.169.0.1', '100.128.0.1', '11.0.0.1', '223.255.255.1', '8.8.8.8']) expect(forbiddenAnswer(a, '10.89.0.0/16', own, []), a).toBe(false);
    // Named by --allow-net: let through.
    expect(forbiddenAnswer('10.89.0.77', '10.89.0.0/16', own, ['10.89.0.77/32'])).toBe(false);
    expect(forbiddenAnswer('192.168.1.20', '10.89.0.0/16', own, ['192.168.1.0/24'])).toBe(false);
  });
});

describe('gc of a bridged container whose caller is gone', () => {
  const id = 'c'.repeat(64);
  const record = (dir: string) => {
    const r: NetworkRecord = { id, list: bridgeConfList('/nonexistent'), cniPath: '/nonexistent', ifname: 'eth0', ports: [], monitor: { pid: 2 ** 22 + 1, start: '1' }, result: null };
    writeFileSync(join(dir, `${id}.json`), JSON.stringify(r));
  };

  it("removes an allowlist's rules before DEL releases its address, and keeps the record (no DEL) while they cannot be removed", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-gc-'));
    try {
      record(dir);
      const calls: string[] = [];
      const ops = (egressOk: boolean) => ({
        del: () => {
          calls.push('del');
          return [];
        },
        removeMasquerade: () => {
          calls.push('masquerade');
        },
        removeEgress: () => {
          calls.push('egress');
          return egressOk;
        },
      });
      expect(gcNetworks(dir, ops(false))).toEqual([]);
      expect(calls).toEqual(['egress']);
      expect(existsSync(join(dir, `${id}.json`))).toBe(true);
      calls.length = 0;
      expect(gcNetworks(dir, ops(true))).toEqual([id]);
      expect(calls).toEqual(['egress', 'del', 'masquerade']);
      expect(existsSync(join(dir, `${id}.json`))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a launch's gc, which ends no process, leaves the network of a container whose keeper still runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-gc-'));
    // A process standing in for the keeper: its command line names the container.
    // (`; exit 0`: a shell that would exec its last command keeps running as itself.)
    const keeper = spawnChild('sh', ['-c', 'sleep 30; exit 0', id], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => keeper.once('spawn', resolve));
      // Its command line is the shell's once it has exec'd.
      for (let i = 0; i < 100 && !readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8').includes(id); i++) await new Promise((r) => setTimeout(r, 10));
      expect(readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8')).toContain(id);
      record(dir);
      writeKeeperRecord({ id, keeper: { pid: keeper.pid!, start: processStart(keeper.pid!)! }, monitor: { pid: 2 ** 22 + 1, start: '1' }, control: '/x/control.sock' }, dir);
      const calls: string[] = [];
      const ops = { del: () => (calls.push('del'), []), removeMasquerade: () => void calls.push('masquerade'), removeEgress: () => (calls.push('egress'), true) };
      expect(gcNetworks(dir, ops, undefined, { endProcesses: false })).toEqual([]);
      expect(calls).toEqual([]);
      expect(existsSync(join(dir, `${id}.json`))).toBe(true);
      expect(existsSync(join(dir, `${id}.keeper.json`))).toBe(true);
      // Its ports stay taken while its DNAT rules do: a new container is told, not sent behind them.
      const published: NetworkRecord = { ...(JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as NetworkRecord), ports: [{ hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
      writeFileSync(join(dir, `${id}.json`), JSON.stringify(published));
      const taken = portTaken('d'.repeat(64), published.ports, dir);
      expect(taken?.toLine()).toBe(`network(8080/tcp): EADDRINUSE — the host port is still published by container ${id.slice(0, 12)}, which ended: the keeper of its allowlist is removing its network; try again in a moment, or run tsbox gc`);
      // Once the keeper is gone, the same gc removes what it left and the network.
      keeper.kill('SIGKILL');
      await new Promise((resolve) => keeper.once('exit', resolve));
      expect(portTaken('d'.repeat(64), published.ports, dir)).toBeNull();
      expect(gcNetworks(dir, ops, undefined, { endProcesses: false })).toEqual([id]);
      expect(existsSync(join(dir, `${id}.json`))).toBe(false);
    } finally {
      keeper.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a detached container's allowlist keeper", () => {
  const id = 'd'.repeat(64);
  const args: KeeperArgs = {
    mode: 'bridge',
    id,
    ip: '10.89.0.5',
    veth: 'veth1234abcd',
    rules: [{ kind: 'host', name: 'a.test', port: null }],
    upstream: '10.0.0.53',
    dir: `/run/tsbox/${id}`,
    monitor: { pid: 42, start: '1234' },
    control: `/run/tsbox/${id}/control.sock`,
    trace: false,
  };

  it('takes its one argument only when each field is what the launch gives', () => {
    expect(parseKeeperArgs(JSON.stringify(args))).toEqual(args);
    expect(parseKeeperArgs(JSON.stringify({ ...args, upstream: null })).upstream).toBeNull();
    const bad: [Record<string, unknown>, string][] = [
      [{ id: 'x' }, 'id'],
      [{ ip: '10.89.0.300' }, 'ip'],
      [{ veth: 'a;rm -rf /' }, 'veth'],
      [{ veth: 'x'.repeat(16) }, 'veth'],
      [{ rules: [] }, 'rules'],
      [{ upstream: 'example.org' }, 'upstream'],
      [{ dir: 'relative' }, 'dir'],
      [{ monitor: { pid: 0, start: '1' } }, 'monitor'],
      [{ monitor: { pid: 42, start: '' } }, 'monitor'],
      [{ control: '/tmp/other.sock' }, 'control'],
      [{ trace: 'yes' }, 'trace'],
    ];
    for (const [change, what] of bad) expect(() => parseKeeperArgs(JSON.stringify({ ...args, ...change })), what).toThrow(`no valid ${what}`);
    expect(() => parseKeeperArgs('{')).toThrow('not JSON');
  });

  it("an ordinary user's (mode ns) takes its records' directory in place of an address and veth, and nothing else as a mode", () => {
    const ns: KeeperArgs = { mode: 'ns', id, records: '/tmp/tsbox-state-1000/network', rules: args.rules, upstream: null, dir: `/tmp/tsbox-state-1000/${id}`, monitor: args.monitor, control: `/tmp/tsbox-state-1000/${id}/control.sock`, trace: true };
    expect(parseKeeperArgs(JSON.stringify(ns))).toEqual(ns);
    expect(keeperDirOf(ns)).toBe('/tmp/tsbox-state-1000/network');
    expect(keeperDirOf(args)).toBe(NETWORK_DIR);
    const bad: [Record<string, unknown>, string][] = [
      [{ records: 'network' }, 'records'],
      [{ records: '/tmp/x/other' }, 'records'],
      [{ records: '/tmp/../etc/network' }, 'records'],
      [{ records: 7 }, 'records'],
      [{ mode: 'other' }, 'mode'],
      [{ mode: undefined }, 'mode'],
    ];
    for (const [change, what] of bad) expect(() => parseKeeperArgs(JSON.stringify({ ...ns, ...change })), what).toThrow(`no valid ${what}`);
    // A bridge keeper's argument still needs its address and veth.
    expect(() => parseKeeperArgs(JSON.stringify({ ...ns, mode: 'bridge' }))).toThrow('no valid ip');
  });

  it('an ns keeper enters only descriptors that are a user and a network namespace', () => {
    const links: Record<number, string> = { 4: 'user:[4026531837]', 5: 'net:[4026531840]', 6: 'mnt:[4026531841]', 7: '/etc/passwd' };
    const link = (fd: number) => {
      const l = links[fd];
      if (l === undefined) throw new Error('EBADF');
      return l;
    };
    expect(() => checkNsDescriptors(NS_FDS, link)).not.toThrow();
    expect(() => checkNsDescriptors({ user: 5, net: 4 }, link)).toThrow('descriptor 5 is net:[4026531840], not a user namespace');
    expect(() => checkNsDescriptors({ user: 4, net: 6 }, link)).toThrow('not a net namespace');
    expect(() => checkNsDescriptors({ user: 4, net: 7 }, link)).toThrow('descriptor 7 is /etc/passwd');
    expect(() => checkNsDescriptors({ user: 4, net: 9 }, link)).toThrow('descriptor 9 is not open');
  });

  it("gc of an ordinary user's records: its keepers' first (no rules on the host to remove), then pasta once the container is gone", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-nskeepers-'));
    try {
      const record: KeeperRecord = { id, keeper: { pid: 7, start: '70' }, monitor: { pid: 8, start: '80' }, control: '/x/control.sock' };
      writeKeeperRecord(record, dir);
      const calls: string[] = [];
      const said: string[] = [];
      const ops: KeeperOps = { ...nsKeeperOps, keeperAlive: () => false, monitorAlive: () => true, endContainer: () => (calls.push('end-container'), true), endKeeper: () => (calls.push('end-keeper'), true) };
      expect(nsKeeperOps.removeEgress(id)).toBe(true);
      // (No pasta record here: what gcPasta collects is pasta's; the keeper's record is gone all the same.)
      expect(gcPasta(dir, (l) => said.push(l), ops)).toEqual([]);
      expect(calls).toEqual(['end-container']);
      expect(said).toEqual([`tsbox: container ${id.slice(0, 12)} was killed: the keeper of its egress allowlist (pid 7) was gone`]);
      expect(existsSync(join(dir, `${id}.keeper.json`))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an ordinary user's record directory is made for its record and removed with the last one", () => {
    const root = mkdtempSync(join(tmpdir(), 'tsbox-nsrecords-'));
    try {
      const dir = join(root, 'network');
      writeKeeperRecord({ id, keeper: { pid: 7, start: '70' }, monitor: { pid: 8, start: '80' }, control: '/x/control.sock' }, dir);
      expect(readdirSync(dir)).toEqual([`${id}.keeper.json`]);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      removeKeeperRecord(id, dir);
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("gc never removes a running container's rules: a keeper whose container is gone is ended, a container whose keeper is gone is killed first", () => {
    expect(keeperVerdict(true, true)).toBe('keep');
    expect(keeperVerdict(true, false)).toBe('end-keeper');
    expect(keeperVerdict(false, true)).toBe('end-container');
    expect(keeperVerdict(false, false)).toBe('remove-rules');
  });

  it('gc: what it ends, in which order, and a record kept while its rules or processes are left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-keepers-'));
    try {
      const record: KeeperRecord = { id, keeper: { pid: 7, start: '70' }, monitor: { pid: 8, start: '80' }, control: '/x/control.sock' };
      const calls: string[] = [];
      const ops = (keeperAlive: boolean, monitorAlive: boolean, ok = true): KeeperOps => ({
        keeperAlive: () => keeperAlive,
        monitorAlive: () => monitorAlive,
        endContainer: () => (calls.push('end-container'), ok),
        endKeeper: () => (calls.push('end-keeper'), ok),
        removeEgress: () => (calls.push('egress'), ok),
      });
      const run = (o: KeeperOps) => {
        calls.length = 0;
        writeKeeperRecord(record, dir);
        return gcKeepers(dir, o);
      };
      expect(run(ops(true, true))).toEqual([]);
      expect(calls).toEqual([]);
      expect(run(ops(false, true))).toEqual([id]);
      expect(calls).toEqual(['end-container', 'egress']);
      const said: string[] = [];
      writeKeeperRecord(record, dir);
      gcKeepers(dir, ops(false, true), (l) => said.push(l));
      expect(said).toEqual([`tsbox: container ${id.slice(0, 12)} was killed: the keeper of its egress allowlist (pid 7) was gone`]);
      expect(existsSync(join(dir, `${id}.keeper.json`))).toBe(false);
      expect(run(ops(true, false))).toEqual([id]);
      expect(calls).toEqual(['end-keeper', 'egress']);
      expect(run(ops(false, false))).toEqual([id]);
      expect(calls).toEqual(['egress']);
      // A launch's collection ends no process: only a pair both dead is collected.
      const background = (o: KeeperOps) => {
        calls.length = 0;
        writeKeeperRecord(record, dir);
        return gcKeepers(dir, o, undefined, { endProcesses: false });
      };
      for (const [keeper, monitor] of [[false, true], [true, false], [true, true]] as const) {
        expect(background(ops(keeper, monitor)), `keeper ${keeper}, monitor ${monitor}`).toEqual([]);
        expect(calls).toEqual([]);
        expect(existsSync(join(dir, `${id}.keeper.json`))).toBe(true);
      }
      expect(background(ops(false, false))).toEqual([id]);
      expect(calls).toEqual(['egress']);
      // A container that would not die keeps its rules and its record.
      expect(run(ops(false, true, false))).toEqual([]);
      expect(calls).toEqual(['end-container']);
      expect(existsSync(join(dir, `${id}.keeper.json`))).toBe(true);
      // A record that is not one (another name, a pid that is no number) is left alone.
      rmSync(join(dir, `${id}.keeper.json`));
      writeFileSync(join(dir, `${'e'.repeat(64)}.keeper.json`), JSON.stringify({ ...record, keeper: { pid: 'x', start: '1' } }));
      calls.length = 0;
      expect(gcKeepers(dir, ops(false, false))).toEqual([]);
      expect(calls).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is found beside the bundle that starts it, or in a checkout's dist/", () => {
    expect(keeperPath('/pkg/dist', (p) => p === '/pkg/dist/keeper.cjs')).toBe('/pkg/dist/keeper.cjs');
    expect(keeperPath('/repo/ts/network', (p) => p === '/repo/dist/keeper.cjs')).toBe('/repo/dist/keeper.cjs');
    expect(rejection(() => keeperPath('/nowhere', () => false)).message).toContain("the allowlist's keeper of a detached container is missing");
  });

  it("what it refused shows in a detached container's state, and nothing else's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbox-refused-'));
    try {
      const network = { mode: 'bridge', interfaces: [], gateway: null, hostInterface: null, bridge: null, ports: [], allow: args.rules };
      const state = { id, detached: true, network } as unknown as ContainerState;
      expect(withRefused(dir, state)).toBe(state);
      const summary = { total: 2, destinations: [{ protocol: 'tcp', address: '10.199.1.2', port: 80, count: 2 }], others: 0, reporting: true };
      writeFileSync(join(dir, 'refused.json'), JSON.stringify(summary));
      expect(withRefused(dir, state).network?.refused).toEqual(summary);
      expect(withRefused(dir, { ...state, detached: false }).network?.refused).toBeUndefined();
      expect(withRefused(dir, { ...state, network: { ...network, allow: [] } }).network?.refused).toBeUndefined();
      writeFileSync(join(dir, 'refused.json'), '{"total":"many"}');
      expect(withRefused(dir, state).network?.refused).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("gc of an ordinary user's pasta", () => {
  it('removes the network directory with its last record (a state root in /tmp outlives its user, and the next user with that uid found it)', () => {
    const root = mkdtempSync(join(tmpdir(), 'tsbox-pasta-gc-'));
    try {
      const dir = join(root, 'network');
      mkdirSync(dir);
      const id = 'd'.repeat(64);
      const pidFile = join(dir, `${id}.pasta.pid`);
      // pasta never started (no pid in its file), and its monitor is gone.
      writeFileSync(pidFile, '0');
      writeFileSync(join(dir, `${id}.pasta.json`), JSON.stringify({ id, pidFile, monitor: { pid: 2 ** 22 + 1, start: '1' } }));
      expect(gcPasta(dir)).toEqual([id]);
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('network "host" with userns "host"', () => {
  it("keeps neither CAP_NET_RAW nor CAP_NET_ADMIN (they would be the host's own over its network), and refuses to add them", () => {
    const { command, options } = parseRunInput(['true'], { network: 'host', userns: 'host' });
    const caps = buildProcessPlan(command, options, 'box', fakeCompiler).capabilities!;
    for (const set of [caps.bounding, caps.effective, caps.permitted]) expect(set).not.toContain('CAP_NET_RAW');
    expect(rejection(() => parseRunInput(['true'], { network: 'host', userns: 'host', capAdd: ['NET_ADMIN'] })).path).toBe('capAdd');
    // With a user namespace of its own, the host's network is not its to act on: Docker's default set.
    const own = parseRunInput(['true'], { network: 'host' });
    expect(buildProcessPlan(own.command, own.options, 'box', fakeCompiler).capabilities!.bounding).toContain('CAP_NET_RAW');
  });
});

describe('refused connections (the allowlist\'s reports)', () => {
  it('counts duplicates once per destination, keeps a bounded list, and counts the rest', () => {
    const r = new Refusals(() => 0);
    const tcp = { protocol: 'tcp', address: '203.0.113.7', port: 443 };
    r.add(tcp);
    r.add({ ...tcp });
    r.add({ protocol: 'dns', address: null, port: null, name: 'x.example' });
    for (let p = 0; p < 100; p++) r.add({ protocol: 'udp', address: '203.0.113.8', port: p });
    const s = r.summary();
    expect(s.total).toBe(103);
    expect(s.destinations).toHaveLength(MAX_DESTINATIONS);
    expect(s.destinations[0]).toEqual({ ...tcp, count: 2 });
    expect(s.destinations[1]).toEqual({ protocol: 'dns', address: null, port: null, name: 'x.example', count: 1 });
    expect(s.others).toBe(103 - 2 - 1 - (MAX_DESTINATIONS - 2));
    expect(s.reporting).toBe(true);
    r.off = 'no NFLOG';
    expect(r.summary().reporting).toBe(false);
  });

  it('passes events on at a bounded rate (a burst, then 20 a second), and a throwing listener harms nothing', () => {
    let now = 0;
    const r = new Refusals(() => now);
    const seen: RefusedConnection[] = [];
    r.listen(() => {
      throw new Error('listener');
    });
    r.listen((e) => seen.push(e));
    for (let i = 0; i < 1000; i++) r.add({ protocol: 'udp', address: '198.51.100.1', port: 53 });
    expect(seen).toHaveLength(40);
    now = 1000;
    for (let i = 0; i < 1000; i++) r.add({ protocol: 'udp', address: '198.51.100.1', port: 53 });
    expect(seen).toHaveLength(60);
    expect(r.summary().total).toBe(2000);
  });

  it('keeps what was refused before anyone listened (a burst) for the first listener', () => {
    const r = new Refusals(() => 0);
    for (let p = 0; p < 100; p++) r.add({ protocol: 'tcp', address: '192.0.2.1', port: p });
    const seen: RefusedConnection[] = [];
    r.listen((e) => seen.push(e));
    expect(seen).toHaveLength(40);
    expect(seen[0]).toEqual({ protocol: 'tcp', address: '192.0.2.1', port: 0 });
  });
});

describe('the allowlist resolver (ts/network/resolver.ts), on the loopback', () => {
  it('gives a name its allowed ports, every port once any rule says so', () => {
    const rules = [
      { kind: 'host' as const, name: 'a.test', port: 443 },
      { kind: 'host' as const, name: 'a.test', port: 443 },
      { kind: 'host' as const, name: 'a.test', port: 80 },
      { kind: 'host' as const, name: 'b.test', port: 80 },
      { kind: 'host' as const, name: 'b.test', port: null },
      { kind: 'net' as const, cidr: '10.0.0.0/8', port: null },
    ];
    expect(portsOf(rules, 'a.test')).toEqual([443, 80]);
    expect(portsOf(rules, 'b.test')).toEqual([null]);
    expect(portsOf(rules, 'c.test')).toBeUndefined();
  });

  it('answers a name that is not allowed NXDOMAIN (reported), opens nothing, and drops queries from any other source', async () => {
    const { createSocket } = await import('node:dgram');
    const opened: string[] = [];
    const refusals = new Refusals();
    const resolver = await startResolver({
      host: '127.0.0.1',
      from: '127.0.0.1',
      rules: [{ kind: 'host', name: 'a.test', port: null }],
      upstream: null,
      refusals,
      forbidden: () => false,
      open: (address, ports) => (opened.push(`${address} ${ports.join(',')}`), true),
      shut: () => true,
    });
    const query = (name: string, id: number) => Buffer.concat([Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
    const ask = async (from: string, name: string, id: number): Promise<Buffer | null> => {
      const client = createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, from, r));
      try {
        return await new Promise<Buffer | null>((resolve) => {
          const t = setTimeout(() => resolve(null), 300);
          client.once('message', (m) => (clearTimeout(t), resolve(m)));
          client.send(query(name, id), resolver.port, '127.0.0.1');
        });
      } finally {
        client.close();
      }
    };
    try {
      const nx = await ask('127.0.0.1', 'b.test', 7);
      expect(nx?.readUInt16BE(0)).toBe(7);
      expect(nx![3]! & 0x0f).toBe(3);
      // No upstream: even an allowed name has no address, and nothing is opened.
      expect((await ask('127.0.0.1', 'a.test', 8))![3]! & 0x0f).toBe(3);
      // Another source (another address of the loopback): no answer, no report.
      expect(await ask('127.0.0.2', 'c.test', 9)).toBeNull();
      expect(refusals.summary().destinations).toEqual([{ protocol: 'dns', address: null, port: null, name: 'b.test', count: 1 }]);
      expect(opened).toEqual([]);
    } finally {
      resolver.close();
    }
  });

  /** A resolver on the loopback allowing a.test, asking the test's upstream at `port`, and what it opened. */
  const aTestResolver = async (port: number) => {
    const opened: string[] = [];
    const resolver = await startResolver({
      host: '127.0.0.1',
      from: '127.0.0.1',
      rules: [{ kind: 'host', name: 'a.test', port: null }],
      upstream: '127.0.0.1',
      upstreamPort: port,
      refusals: new Refusals(),
      forbidden: () => false,
      open: (address, ports) => (opened.push(`${address} ${ports.join(',')}`), true),
      shut: () => true,
    });
    return { resolver, opened };
  };
  /** A container's query for a.test's A record, with `id`. */
  const aTestQuery = (id: number) => Buffer.concat([Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([1]), Buffer.from('a'), Buffer.from([4]), Buffer.from('test'), Buffer.from([0, 0, 1, 0, 1])]);

  it("asks upstream with an id of its own: an answer with the container's id is ignored, the right one reaches the container with its id", async () => {
    const { createSocket } = await import('node:dgram');
    const upstream = createSocket('udp4');
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    // Two queries of the container's, both with its id 0x1234.
    const seen: { msg: Buffer; port: number }[] = [];
    const asked = new Promise<void>((resolve) => upstream.on('message', (msg, from) => (seen.push({ msg, port: from.port }), seen.length === 2 && resolve())));
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const heard = new Promise<Buffer>((resolve) => client.once('message', (m) => resolve(m)));
    const { resolver, opened } = await aTestResolver(upstream.address().port);
    try {
      const q = aTestQuery(0x1234);
      client.send(q, resolver.port, '127.0.0.1');
      client.send(q, resolver.port, '127.0.0.1');
      await asked;
      // The container's own id (what a spoofer who saw its query would use) is not the one asked (both being it by chance: 1 in 2^32).
      const mine = seen.find((s) => s.msg.readUInt16BE(0) !== 0x1234);
      expect(mine).toBeDefined();
      const { msg, port } = mine!;
      const answer = (id: Buffer, address: number[]) => Buffer.concat([id, Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), msg.subarray(12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...address])]);
      upstream.send(answer(Buffer.from([0x12, 0x34]), [10, 9, 9, 9]), port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
      expect(opened).toEqual([]);
      upstream.send(answer(msg.subarray(0, 2), [10, 1, 2, 3]), port, '127.0.0.1');
      const reply = await heard;
      expect(reply.readUInt16BE(0)).toBe(0x1234);
      expect(opened).toEqual(['10.1.2.3 ']);
    } finally {
      resolver.close();
      client.close();
      upstream.close();
    }
  });

  it('ends the queries it still asks upstream when it closes: no socket is left, and a late answer opens nothing', async () => {
    const { createSocket } = await import('node:dgram');
    const { readdirSync, readlinkSync } = await import('node:fs');
    const sockets = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    }).length;
    // An upstream server that answers only when told to.
    const upstream = createSocket('udp4');
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    const asked = new Promise<{ msg: Buffer; port: number }>((resolve) => upstream.once('message', (msg, from) => resolve({ msg, port: from.port })));
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const before = sockets();
    const { resolver, opened } = await aTestResolver(upstream.address().port);
    try {
      const q = aTestQuery(5);
      client.send(q, resolver.port, '127.0.0.1');
      const { msg, port } = await asked;
      // The container is gone before the answer comes.
      resolver.close();
      expect(sockets()).toBe(before);
      // An answer for a.test (one A record, 10.1.2.3) reaches no socket of the resolver's.
      const answer = Buffer.concat([msg.subarray(0, 2), Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), msg.subarray(12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3])]);
      upstream.send(answer, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
      expect(opened).toEqual([]);
    } finally {
      resolver.close();
      client.close();
      upstream.close();
    }
  });
});

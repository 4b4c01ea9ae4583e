/**
 * `publishAll` (Docker's `-P`): each exposed port that `publish` does not
 * name gets a host port nothing uses, on every IPv4 address of the host.
 *
 * As Docker's port allocator, the port comes from the host's ephemeral
 * range (net.ipv4.ip_local_port_range): the kernel's own choice for a
 * socket bound to port 0, which is one no socket holds. Every socket is
 * held until all ports are chosen, so that two exposed ports never get the
 * same one; then they are closed, and the ports are published as `-p`'s
 * are (a DNAT rule of portmap's as root, a socket of pasta's otherwise).
 * A port another container publishes (a DNAT rule holds no socket) is
 * passed over (`taken`).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

import type { ExposedPort, PortMapping } from '../config/network.js';
import { fromSystemError, TsboxError } from '../errors.js';

/** The most ports the kernel is asked for before one that no container publishes is given up on. */
const TRIES = 64;

type Held = Server | UdpSocket;

function bindAny(protocol: 'tcp' | 'udp'): Promise<{ port: number; held: Held }> {
  return new Promise((resolve, reject) => {
    if (protocol === 'udp') {
      const sock = createSocket('udp4');
      sock.once('error', reject);
      sock.bind({ port: 0, address: '0.0.0.0', exclusive: true }, () => resolve({ port: sock.address().port, held: sock }));
    } else {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '0.0.0.0', exclusive: true }, () => resolve({ port: (srv.address() as { port: number }).port, held: srv }));
    }
  });
}

function release(held: Held): Promise<void> {
  return new Promise((resolve) => {
    held.close(() => resolve());
  });
}

/**
 * The exposed ports of `exposed` that `publish` leaves out (by container
 * port and protocol), each on a free host port, in the order given (once each).
 */
export async function publishAllPorts(publish: readonly PortMapping[], exposed: readonly ExposedPort[], taken: (p: PortMapping) => boolean = () => false): Promise<PortMapping[]> {
  const wanted: ExposedPort[] = [];
  for (const e of exposed) {
    const named = (p: { containerPort: number; protocol: string }) => p.containerPort === e.containerPort && p.protocol === e.protocol;
    if (!publish.some(named) && !wanted.some(named)) wanted.push(e);
  }
  const held: Held[] = [];
  const chosen: PortMapping[] = [];
  try {
    for (const e of wanted) {
      for (let i = 0; ; i++) {
        let bound;
        try {
          bound = await bindAny(e.protocol);
        } catch (err) {
          throw fromSystemError('network', err, `find a free host port for the exposed port ${e.containerPort}/${e.protocol}`, 'publish it on a port of your choosing: -p HOSTPORT:CONTAINERPORT');
        }
        // Held either way: a port passed over is not offered again.
        held.push(bound.held);
        const mapping: PortMapping = { hostIp: '', hostPort: bound.port, containerPort: e.containerPort, protocol: e.protocol };
        if (!taken(mapping)) {
          chosen.push(mapping);
          break;
        }
        if (i + 1 >= TRIES) {
          throw new TsboxError({ step: 'network', errno: 98, path: `${e.containerPort}/${e.protocol}`, detail: `the kernel offered ${TRIES} host ports for the exposed port, each published by another container`, hint: 'publish it on a port of your choosing: -p HOSTPORT:CONTAINERPORT' });
        }
      }
    }
  } finally {
    await Promise.all(held.map(release));
  }
  return chosen;
}

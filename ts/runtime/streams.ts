/** The streams of a container's stdio: pipes, held output, the terminal's master. */
import { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { ReadStream } from 'node:tty';

import type { NativeChannel } from '../native.js';
import { recv, type HelperMsg } from './protocol.js';

/** The terminal's master as one duplex stream (as node-pty does). */
function openTerminal(fd: number): ReadStream {
  const t = new ReadStream(fd);
  // EIO is how a pty master says the last slave has closed: the end, not an error.
  t.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EIO') t.emit('terminal-error', err);
  });
  return t;
}

/** The terminal a `pty` message handed over on `ch`; null when none came with it. */
export function takeTerminal(ch: { takeFd(): number }): { stream: ReadStream; fd: number } | null {
  const fd = ch.takeFd();
  return fd >= 0 ? { stream: openTerminal(fd), fd } : null;
}

export function hold(stream: Readable | null): Readable | null {
  if (!stream) return null;
  const out = new PassThrough();
  stream.pipe(out);
  return out;
}

/** A stream over our end of a stdio pipe, or null when the stream was not piped. */
export function pipeStream(fd: number, readable: boolean): Socket | null {
  if (fd < 0) return null;
  const socket = new Socket({ fd, readable, writable: !readable });
  // The other end going away is how a container's output ends, not a failure.
  socket.on('error', () => {});
  return socket;
}


/**
 * The reply to a process handed over (phase 8, or an exec): the terminal it
 * sent first, with tty, then `started`, `exited` or `failed` (null: the
 * other end closed). The caller owns the terminal whatever the reply.
 */
export async function recvStarted(ch: NativeChannel): Promise<{ msg: HelperMsg | null; terminal?: ReadStream; terminalFd?: number }> {
  let msg = await recv(ch);
  let terminal: { stream: ReadStream; fd: number } | null = null;
  while (msg?.type === 'pty') {
    terminal = takeTerminal(ch) ?? terminal;
    msg = await recv(ch);
  }
  return terminal ? { msg, terminal: terminal.stream, terminalFd: terminal.fd } : { msg };
}

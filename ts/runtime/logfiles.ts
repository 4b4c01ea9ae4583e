/**
 * A detached container's log as its readers see it: `tsbox logs [-f]` and
 * ContainerRef.logs(). The monitor keeps at most two files (logMaxSize; the
 * monitor's helper/log.rs): a full LOG is renamed LOG.1 (over the one
 * before) and a new LOG is put in its place. The reader gives what they hold
 * in order, and, followed, holds the file it reads open, so that its end is
 * read after it was renamed.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/**
 * What reading the log needs of the filesystem: a parameter, so that the
 * unit tests can rotate the files between any two of these steps.
 */
export interface LogFs {
  /** A descriptor of the file at `path`, or null when there is none. */
  open(path: string): number | null;
  /** The inode of the file at `path` now, or null when there is none. */
  inode(path: string): number | null;
  /** The inode of an open file. */
  fileInode(fd: number): number;
  read(fd: number, buf: Buffer, position: number): number;
  close(fd: number): void;
}

export const nodeLogFs: LogFs = {
  open(path) {
    try {
      return openSync(path, 'r');
    } catch {
      return null;
    }
  },
  inode(path) {
    try {
      return statSync(path).ino;
    } catch {
      return null;
    }
  },
  fileInode: (fd) => fstatSync(fd).ino,
  read: (fd, buf, position) => readSync(fd, buf, 0, buf.length, position),
  close: (fd) => closeSync(fd),
};

/** Reads one container's log files in order, passing what it reads to `write`. */
export class LogReader {
  readonly #log: string;
  readonly #write: (chunk: Buffer) => void;
  readonly #fs: LogFs;
  /** The file being read, and how far. */
  #fd: number | null = null;
  #offset = 0;

  constructor(log: string, write: (chunk: Buffer) => void, fs: LogFs = nodeLogFs) {
    this.#log = log;
    this.#write = write;
    this.#fs = fs;
  }

  /** Everything so far: the older file first, then LOG, which it then holds. */
  start(): void {
    const previous = this.#fs.open(`${this.#log}.1`);
    if (previous !== null) {
      this.#copyFrom(previous, 0);
      this.#fs.close(previous);
    }
    this.#fd = this.#fs.open(this.#log);
    this.#offset = this.#fd !== null ? this.#copyFrom(this.#fd, 0) : 0;
  }

  /** What was written since the last call, across a rotation. */
  poll(): void {
    if (this.#fd !== null) this.#offset = this.#copyFrom(this.#fd, this.#offset);
    const now = this.#fs.inode(this.#log);
    if (now !== null && (this.#fd === null || now !== this.#fs.fileInode(this.#fd))) {
      // Rotated: the rest of the old file (nothing is added to it
      // once the new one is in place), then the new one from its start.
      if (this.#fd !== null) {
        this.#copyFrom(this.#fd, this.#offset);
        this.#fs.close(this.#fd);
      }
      this.#fd = this.#fs.open(this.#log);
      this.#offset = this.#fd !== null ? this.#copyFrom(this.#fd, 0) : 0;
    }
  }

  close(): void {
    if (this.#fd !== null) this.#fs.close(this.#fd);
    this.#fd = null;
  }

  /** Passes `fd` from `offset` to its end on, in chunks; the new offset. */
  #copyFrom(fd: number, offset: number): number {
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = this.#fs.read(fd, buf, offset);
      if (n === 0) return offset;
      offset += n;
      this.#write(Buffer.from(buf.subarray(0, n)));
    }
  }
}

/** A detached container's output so far, read as `tsbox logs` does. */
export function readLog(log: string, fs: LogFs = nodeLogFs): string {
  const chunks: Buffer[] = [];
  const reader = new LogReader(log, (c) => chunks.push(c), fs);
  try {
    reader.start();
  } finally {
    reader.close();
  }
  return Buffer.concat(chunks).toString('utf8');
}

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
  /** The inode of an open file, and how many names it has (0: renamed over). */
  stat(fd: number): { ino: number; nlink: number };
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
  stat: (fd) => fstatSync(fd),
  read: (fd, buf, position) => readSync(fd, buf, 0, buf.length, position),
  close: (fd) => closeSync(fd),
};

interface Held {
  fd: number;
  ino: number;
  offset: number;
}

/** Reads one container's log files in order, passing what it reads to `write`. */
export class LogReader {
  readonly #log: string;
  readonly #write: (chunk: Buffer) => void;
  readonly #fs: LogFs;
  /**
   * The file being read, and how far; held open, its inode is not reused,
   * so that comparing it with another file's tells whether it is the same.
   */
  #held: Held | null = null;

  constructor(log: string, write: (chunk: Buffer) => void, fs: LogFs = nodeLogFs) {
    this.#log = log;
    this.#write = write;
    this.#fs = fs;
  }

  /**
   * Everything so far: the older file first, then LOG, which it then holds.
   * LOG is opened first and LOG.1 second, and LOG.1 is read only when it
   * came just before LOG; opened the other way round, the file that moved
   * between the two opens was never read.
   */
  start(): void {
    for (let tries = 1; ; tries++) {
      const now = this.#open(this.#log);
      const older = this.#open(`${this.#log}.1`);
      if (now === null || older === null) {
        // Not rotated yet, or halfway through a rotation (LOG renamed, the
        // new one not yet in place): LOG.1 is then the newest file.
        const only = now ?? older;
        if (only !== null) this.#hold(only);
        return;
      }
      // LOG.1 is another file than the one opened as LOG, which has not
      // been renamed over since (two rotations: its link count is 0): no
      // rotation between the opens, LOG.1 came just before.
      if (older.ino !== now.ino && this.#fs.stat(now.fd).nlink > 0) {
        try {
          this.#hold(older);
        } catch (e) {
          this.#fs.close(now.fd);
          throw e;
        }
        this.#hold(now);
        return;
      }
      // Rotated between the opens: LOG.1 is the file opened as LOG, or may
      // be newer than it. Both are opened again; a log that keeps rotating
      // that fast leaves the file opened as LOG alone, read once.
      this.#fs.close(older.fd);
      if (tries === 3) {
        this.#hold(now);
        return;
      }
      this.#fs.close(now.fd);
    }
  }

  /**
   * What was written since the last call, across rotations. The held file
   * is read to its end once LOG is another file (nothing is added to it
   * then). LOG.1 is then the file that came next unless it is the held one:
   * two rotations since the last call, as a container writing twice the
   * limit between two polls makes; it is read whole before the new LOG.
   * Files rotated away in between (three rotations and more) are gone, and
   * what is read is still in order, and read once.
   */
  poll(): void {
    if (this.#held !== null) this.#held.offset = this.#copyFrom(this.#held.fd, this.#held.offset);
    const now = this.#fs.inode(this.#log);
    // The same file, or halfway through a rotation: the next call sees it.
    if (now === null || now === this.#held?.ino) return;
    if (this.#held !== null) this.#held.offset = this.#copyFrom(this.#held.fd, this.#held.offset);
    // LOG.1 first, then LOG: a file found as LOG.1 cannot be LOG again, so
    // the second is always the newer.
    for (const path of [`${this.#log}.1`, this.#log]) {
      const next = this.#open(path);
      if (next === null) continue;
      if (next.ino === this.#held?.ino) this.#fs.close(next.fd);
      else this.#hold(next);
    }
  }

  close(): void {
    if (this.#held !== null) this.#fs.close(this.#held.fd);
    this.#held = null;
  }

  #open(path: string): Held | null {
    const fd = this.#fs.open(path);
    return fd === null ? null : { fd, ino: this.#fs.stat(fd).ino, offset: 0 };
  }

  /**
   * Holds `file` in place of the one held, and reads it whole (held first,
   * so that close() closes it if the read fails).
   */
  #hold(file: Held): void {
    this.close();
    this.#held = file;
    file.offset = this.#copyFrom(file.fd, 0);
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

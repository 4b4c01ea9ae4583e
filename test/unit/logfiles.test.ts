/**
 * Reading a detached container's log across the monitor's rotations, with
 * real files in a temporary directory, rotated as the monitor does it
 * (crates/tsbox-init/src/helper/log.rs: the new file made aside, LOG renamed
 * LOG.1 over the one before, the new file renamed LOG) between any two of
 * the reader's steps.
 */
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { LogReader, nodeLogFs, readLog, type LogFs } from '../../ts/runtime/logfiles.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsbox-logfiles-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The monitor's side: numbered lines, and rotations, whole or halfway. */
class Monitor {
  readonly log: string;
  #next = 1;
  constructor() {
    this.log = join(dir, 'container.log');
    writeFileSync(this.log, '');
  }
  /** Writes `count` lines; the text written. */
  write(count: number): string {
    const text = lines(this.#next, this.#next + count - 1);
    this.#next += count;
    appendFileSync(this.log, text);
    return text;
  }
  /** LOG becomes LOG.1; the new LOG is not in place yet. */
  beginRotation(): void {
    writeFileSync(`${this.log}.next`, '');
    renameSync(this.log, `${this.log}.1`);
  }
  endRotation(): void {
    renameSync(`${this.log}.next`, this.log);
  }
  rotate(): void {
    this.beginRotation();
    this.endRotation();
  }
}

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('');

/** The real files, with `act` run just before the reader opens `path` for the `nth` time (every time: 0). */
function rotating(path: string, nth: number, act: () => void): LogFs {
  let opens = 0;
  return {
    ...nodeLogFs,
    open(p) {
      if (p === path && (++opens === nth || nth === 0)) act();
      return nodeLogFs.open(p);
    },
  };
}

function reader(log: string, fs: LogFs = nodeLogFs) {
  const out: Buffer[] = [];
  const r = new LogReader(log, (c) => out.push(c), fs);
  return { r, text: () => Buffer.concat(out).toString('utf8') };
}

describe('LogReader, followed (tsbox logs -f)', () => {
  it('reads the rest of the held file, then the new one, across one rotation between polls', () => {
    const m = new Monitor();
    const { r, text } = reader(m.log);
    let all = m.write(10);
    r.start();
    all += m.write(5);
    m.rotate();
    all += m.write(5);
    r.poll();
    expect(text()).toBe(all);
    r.close();
  });

  it('two rotations between two polls: the file between them is read whole, in its place, and nothing twice', () => {
    const m = new Monitor();
    const { r, text } = reader(m.log);
    let all = m.write(10);
    r.start();
    all += m.write(5);
    m.rotate();
    all += m.write(7); // the middle file, LOG.1 at the next poll
    m.rotate();
    all += m.write(3);
    r.poll();
    expect(text()).toBe(all);
    all += m.write(2);
    r.poll();
    expect(text()).toBe(all);
    r.close();
  });

  it('three rotations between two polls: the file rotated away is lost, what is read is in order and once', () => {
    const m = new Monitor();
    const { r, text } = reader(m.log);
    const held = m.write(10);
    r.start();
    m.rotate();
    m.write(4); // renamed over by the third rotation before any poll: gone
    m.rotate();
    const middle = m.write(6);
    m.rotate();
    const last = m.write(3);
    r.poll();
    expect(text()).toBe(held + middle + last);
    r.close();
  });

  it('a rotation halfway through when the follower opens the new LOG: the file that moved comes next, once', () => {
    const m = new Monitor();
    let all = m.write(10);
    // The second open of LOG, at the poll, finds none: the monitor has
    // renamed the new file LOG.1 and not yet put the next one in place.
    const { r, text } = reader(
      m.log,
      rotating(m.log, 2, () => {
        all += m.write(2);
        m.beginRotation();
      }),
    );
    r.start();
    all += m.write(5);
    m.rotate();
    all += m.write(3);
    r.poll();
    m.endRotation();
    all += m.write(4);
    r.poll();
    expect(text()).toBe(all);
    r.poll();
    expect(text()).toBe(all);
    r.close();
  });

  it('halfway through a rotation at start: LOG.1 is read, and not again once the new LOG is in place', () => {
    const m = new Monitor();
    const first = m.write(10);
    m.beginRotation();
    const { r, text } = reader(m.log);
    r.start();
    expect(text()).toBe(first);
    m.endRotation();
    const after = m.write(3);
    r.poll();
    expect(text()).toBe(first + after);
    r.close();
  });
});

describe('LogReader, at start', () => {
  it('a rotation just before LOG is opened: the two files then there, in order, without a gap', () => {
    const m = new Monitor();
    m.write(10); // LOG.1, renamed over by the rotation: gone
    m.rotate();
    const moved = m.write(5);
    let newer = '';
    const { r, text } = reader(
      m.log,
      rotating(m.log, 1, () => {
        m.rotate();
        newer = m.write(4);
      }),
    );
    r.start();
    expect(text()).toBe(moved + newer);
    const after = m.write(3);
    r.poll();
    expect(text()).toBe(moved + newer + after);
    r.close();
  });

  it('a rotation between the opens: the file opened as LOG, now LOG.1, is read once, then the new LOG', () => {
    const m = new Monitor();
    m.write(10);
    m.rotate();
    const moved = m.write(5);
    let newer = '';
    const { r, text } = reader(
      m.log,
      rotating(`${m.log}.1`, 1, () => {
        m.rotate();
        newer = m.write(4);
      }),
    );
    r.start();
    expect(text()).toBe(moved + newer);
    const after = m.write(3);
    r.poll();
    expect(text()).toBe(moved + newer + after);
    r.close();
  });

  it('two rotations between the opens (LOG.1 newer than the file opened as LOG): opened again, read in order', () => {
    const m = new Monitor();
    m.write(10);
    m.rotate();
    m.write(5); // LOG at the first open, renamed over by the second rotation
    let older = '';
    let newer = '';
    const { r, text } = reader(
      m.log,
      rotating(`${m.log}.1`, 1, () => {
        m.rotate();
        older = m.write(6);
        m.rotate();
        newer = m.write(2);
      }),
    );
    r.start();
    expect(text()).toBe(older + newer);
    r.close();
  });

  it('a log rotated between the opens every time: the file opened as LOG the third time, once, then on from there', () => {
    const m = new Monitor();
    m.write(10);
    m.rotate();
    m.write(5);
    const written: string[] = [];
    const { r, text } = reader(
      m.log,
      rotating(`${m.log}.1`, 0, () => {
        written.push(m.write(3));
        m.rotate();
      }),
    );
    r.start();
    expect(written).toHaveLength(3);
    expect(text()).toBe(written[2]);
    written.push(m.write(2));
    r.poll(); // opens LOG.1 once more, rotating again: the file held, then the new one
    expect(text()).toBe(written.slice(2).join(''));
    r.close();
  });
});

describe('readLog (tsbox logs, ContainerRef.logs())', () => {
  it('reads LOG.1, then LOG', () => {
    const m = new Monitor();
    const older = m.write(10);
    m.rotate();
    const newer = m.write(3);
    expect(readLog(m.log)).toBe(older + newer);
  });

  it('a rotation just before LOG is opened: the two files then there, and no gap', () => {
    const m = new Monitor();
    m.write(10);
    m.rotate();
    const moved = m.write(5);
    let newer = '';
    const log = readLog(
      m.log,
      rotating(m.log, 1, () => {
        m.rotate();
        newer = m.write(4);
      }),
    );
    expect(log).toBe(moved + newer);
  });
});

import { describe, expect, it } from 'vitest';

import { parseSize } from '../../ts/config/mounts.js';
import { parseRunInput } from '../../ts/config/schema.js';
import { TsboxError } from '../../ts/errors.js';

const opts = (o: Record<string, unknown>) => parseRunInput(['true'], o).options;
const issue = (o: Record<string, unknown>) => {
  try {
    parseRunInput(['true'], o);
  } catch (e) {
    expect(e).toBeInstanceOf(TsboxError);
    return (e as TsboxError).issues[0];
  }
  throw new Error('expected a config error');
};

describe('volumes', () => {
  it('parses HOST:CONTAINER[:ro|rw][,idmap]; a volume is idmapped only when asked', () => {
    expect(opts({ volumes: ['/a:/b', '/c:/d:ro', '/e:/f:rw', '/g:/h:ro,idmap', '/i:/j:idmap'] }).volumes).toEqual([
      { type: 'bind', source: '/a', target: '/b', readonly: false, idmap: false },
      { type: 'bind', source: '/c', target: '/d', readonly: true, idmap: false },
      { type: 'bind', source: '/e', target: '/f', readonly: false, idmap: false },
      { type: 'bind', source: '/g', target: '/h', readonly: true, idmap: true },
      { type: 'bind', source: '/i', target: '/j', readonly: false, idmap: true },
    ]);
  });

  it('takes objects as well', () => {
    expect(opts({ volumes: [{ source: 'rel', target: '/x', readonly: true }] }).volumes).toEqual([{ type: 'bind', source: 'rel', target: '/x', readonly: true, idmap: false }]);
    expect(opts({ volumes: [{ source: '/y', target: '/x', idmap: true }] }).volumes).toEqual([{ type: 'bind', source: '/y', target: '/x', readonly: false, idmap: true }]);
  });

  it('names the volume and the problem', () => {
    expect(issue({ volumes: ['/a:/b', '/a:/b:rox'] })).toEqual({ path: 'volumes[1]', message: '"/a:/b:rox": unknown option "rox" (use ro, rw or idmap)' });
    expect(issue({ volumes: ['/a'] })!.message).toMatch(/is not HOST:CONTAINER/);
    expect(issue({ volumes: ['/a:b'] })!.message).toMatch(/must be absolute/);
    expect(issue({ volumes: [':/b'] })!.message).toMatch(/empty host path/);
    expect(issue({ volumes: ['/a:/'] })!.message).toMatch(/cannot be \/ itself/);
  });

  it('refuses / however it is written, in every form, naming the option and the value', () => {
    for (const t of ['//', '/.', '/./', '/a/..', '/../', '/a/./b/../..//']) {
      expect(issue({ volumes: [`/a:${t}`] }), t).toEqual({ path: 'volumes[0]', message: `"/a:${t}": the container path cannot be / itself (nor //, /. or /a/.., which are /): a mount there would replace the whole root` });
      expect(issue({ volumes: [{ source: '/a', target: t }] }), t).toMatchObject({ path: 'volumes[0].target', message: expect.stringMatching(/cannot be \/ itself/) });
      expect(issue({ tmpfs: [`${t}:size=1m`] })!.message, t).toMatch(new RegExp(`^"${t.replace(/[.]/g, '\\.')}:size=1m": the container path cannot be / itself`));
      expect(issue({ mounts: [`type=bind,src=/a,dst=${t}`] })!.message, t).toMatch(/cannot be \/ itself/);
    }
    // A path below / that only looks odd is still a path below /.
    expect(opts({ volumes: ['/a://b/./c/'] }).volumes[0]).toMatchObject({ target: '//b/./c/' });
  });
});

describe('tmpfs and --mount', () => {
  it('parses --tmpfs sizes and modes', () => {
    expect(opts({ tmpfs: ['/t', '/u:size=64m,mode=1777', '/v:ro'] }).tmpfs).toEqual([
      { type: 'tmpfs', target: '/t', readonly: false },
      { type: 'tmpfs', target: '/u', size: 64 * 1024 * 1024, mode: 0o1777, readonly: false },
      { type: 'tmpfs', target: '/v', readonly: true },
    ]);
    expect(issue({ tmpfs: ['/t:size=lots'] })!.message).toMatch(/size "lots" is not a size/);
    expect(issue({ tmpfs: ['/t:mode=999'] })!.message).toMatch(/mode "999" is not an octal mode/);
  });

  it("parses Docker's --mount", () => {
    expect(opts({ mounts: ['type=bind,src=/a,dst=/b,readonly', 'type=tmpfs,target=/t,tmpfs-size=1m', 'source=/c,target=/d,ro=false', 'type=bind,source=/e,target=/f,idmap'] }).mounts).toEqual([
      { type: 'bind', source: '/a', target: '/b', readonly: true, idmap: false },
      { type: 'tmpfs', target: '/t', size: 1024 * 1024, readonly: false },
      { type: 'bind', source: '/c', target: '/d', readonly: false, idmap: false },
      { type: 'bind', source: '/e', target: '/f', readonly: false, idmap: true },
    ]);
    expect(issue({ mounts: ['type=bind,target=/b'] })!.message).toMatch(/no source=/);
    expect(issue({ mounts: ['type=bind,source=/a'] })!.message).toMatch(/no target=/);
    expect(issue({ mounts: ['type=bind,source=/a,target=/b,bogus=1'] })!.message).toMatch(/unknown field "bogus"/);
  });

  it('reads sizes as Docker does', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('64MB')).toBe(64 * 1024 ** 2);
    // One reading of sizes everywhere: the IEC units as -m takes them (issue 19).
    expect(parseSize('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseSize('2Gi')).toBe(2 * 1024 ** 3);
    expect(parseSize('x')).toBeUndefined();
  });
});

describe('root modes', () => {
  it('refuses writableRootfs with readOnly or without a rootfs', () => {
    expect(issue({ rootfs: '/r', readOnly: true, writableRootfs: true })).toEqual({ path: 'writableRootfs', message: 'cannot be combined with readOnly (--read-only)' });
    expect(issue({ writableRootfs: true })!.message).toMatch(/needs a rootfs/);
  });
});

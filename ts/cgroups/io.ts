/**
 * io (v2) / blkio (v1): relative weight, and bytes and operations per second
 * per block device.
 *
 * | limit          | v1                                        | v2                                   |
 * |----------------|-------------------------------------------|--------------------------------------|
 * | blkioWeight    | blkio.weight and/or blkio.bfq.weight      | io.weight (converted) and/or io.bfq.weight |
 * | blkioWeightDevice | blkio.weight_device / blkio.bfq.weight_device "M:m W" | io.weight "M:m W'" / io.bfq.weight "M:m W" |
 * | deviceReadBps  | blkio.throttle.read_bps_device "M:m N"    | io.max "M:m rbps=N"                  |
 * | deviceWriteBps | blkio.throttle.write_bps_device           | io.max "M:m wbps=N"                  |
 * | deviceReadIops | blkio.throttle.read_iops_device           | io.max "M:m riops=N"                 |
 * | deviceWriteIops| blkio.throttle.write_iops_device          | io.max "M:m wiops=N"                 |
 *
 * Each weight file the kernel has is written: io.weight is what the io.cost
 * model uses, the bfq files what the BFQ scheduler uses (runc writes the bfq
 * one where it exists, else the converted io.weight).
 */
import type { Controller, DeviceNumbers, LimitWrite } from './controller.js';
import { blkioWeightToIoWeight, type CgroupLimits } from './limits.js';

const WEIGHT_HINT =
  'the kernel has no block I/O weight here: it needs the BFQ I/O scheduler (blkio.bfq.weight, io.bfq.weight) or, on v2, io.weight; check /sys/block/DEV/queue/scheduler, or leave blkioWeight out';
const THROTTLE_HINT = 'the kernel has no block I/O throttling (CONFIG_BLK_DEV_THROTTLING); leave the device rate limits out';

type RateLimit = 'deviceReadBps' | 'deviceWriteBps' | 'deviceReadIops' | 'deviceWriteIops';
const RATES: readonly { limit: RateLimit; v1: string; v2: string }[] = [
  { limit: 'deviceReadBps', v1: 'blkio.throttle.read_bps_device', v2: 'rbps' },
  { limit: 'deviceWriteBps', v1: 'blkio.throttle.write_bps_device', v2: 'wbps' },
  { limit: 'deviceReadIops', v1: 'blkio.throttle.read_iops_device', v2: 'riops' },
  { limit: 'deviceWriteIops', v1: 'blkio.throttle.write_iops_device', v2: 'wiops' },
];

/** A block device as a limit names it: by path, or by number (the schema lets through exactly one of the two). */
export interface LimitDevice {
  path?: string | undefined;
  major?: number | undefined;
  minor?: number | undefined;
}

/** The key of a limit's device in {@link DeviceNumbers}: its path, or `major:minor`. */
export function deviceKey(d: LimitDevice): string {
  return d.path ?? `${d.major}:${d.minor}`;
}

/** Every block device the limits name, once each. */
export function limitDevices(l: CgroupLimits): LimitDevice[] {
  const all: LimitDevice[] = [...(l.blkioWeightDevice ?? []), ...RATES.flatMap((r) => l[r.limit] ?? [])];
  return [...new Map(all.map((d) => [deviceKey(d), d.path !== undefined ? { path: d.path } : { major: d.major, minor: d.minor }])).values()];
}

export const io: Controller = {
  name: 'io',
  v1: ['blkio'],
  limits: ['blkioWeight', 'blkioWeightDevice', 'deviceReadBps', 'deviceWriteBps', 'deviceReadIops', 'deviceWriteIops'],
  stats: false,
  required: (l) => l.blkioWeight !== undefined || limitDevices(l).length > 0,
  writes(version, l, devices: DeviceNumbers) {
    const out: LimitWrite[] = [];
    const dev = (d: LimitDevice) => devices.get(deviceKey(d))!;
    if (version === 1) {
      if (l.blkioWeight !== undefined) {
        const value = String(l.blkioWeight);
        out.push({ hierarchy: 'blkio', files: [{ file: 'blkio.weight', value }, { file: 'blkio.bfq.weight', value }], limit: 'blkioWeight', missingHint: WEIGHT_HINT });
      }
      for (const d of l.blkioWeightDevice ?? []) {
        const value = `${dev(d)} ${d.weight}`;
        out.push({ hierarchy: 'blkio', files: [{ file: 'blkio.weight_device', value }, { file: 'blkio.bfq.weight_device', value }], limit: 'blkioWeightDevice', missingHint: WEIGHT_HINT });
      }
      for (const r of RATES) {
        for (const d of l[r.limit] ?? []) {
          out.push({ hierarchy: 'blkio', files: [{ file: r.v1, value: `${dev(d)} ${d.rate}` }], limit: r.limit, missingHint: THROTTLE_HINT });
        }
      }
      return out;
    }
    if (l.blkioWeight !== undefined) {
      out.push({
        hierarchy: 'unified',
        files: [
          { file: 'io.weight', value: `default ${blkioWeightToIoWeight(l.blkioWeight)}` },
          { file: 'io.bfq.weight', value: String(l.blkioWeight) },
        ],
        limit: 'blkioWeight',
        missingHint: WEIGHT_HINT,
      });
    }
    for (const d of l.blkioWeightDevice ?? []) {
      out.push({
        hierarchy: 'unified',
        files: [
          { file: 'io.weight', value: `${dev(d)} ${blkioWeightToIoWeight(d.weight)}` },
          { file: 'io.bfq.weight', value: `${dev(d)} ${d.weight}` },
        ],
        limit: 'blkioWeightDevice',
        missingHint: WEIGHT_HINT,
      });
    }
    // One io.max line per device, carrying every rate given for it.
    const lines = new Map<string, { keys: string[]; limit: RateLimit }>();
    for (const r of RATES) {
      for (const d of l[r.limit] ?? []) {
        const line = lines.get(dev(d)) ?? { keys: [], limit: r.limit };
        line.keys.push(`${r.v2}=${d.rate}`);
        lines.set(dev(d), line);
      }
    }
    for (const [majMin, line] of lines) {
      out.push({ hierarchy: 'unified', files: [{ file: 'io.max', value: `${majMin} ${line.keys.join(' ')}` }], limit: line.limit, missingHint: THROTTLE_HINT });
    }
    return out;
  },
};

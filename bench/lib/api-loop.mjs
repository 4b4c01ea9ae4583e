// The tsbox API in a process of its own, for strace and perf: one launch to load
// and warm everything, then COUNT more of /bin/true in ROOTFS, one after another.
// Profiled with COUNT and with 0, the difference divided by COUNT is what one
// container costs a long-lived Node process.
//
// Usage: node bench/lib/api-loop.mjs ROOTFS COUNT
import { spawn } from 'tsbox';

const [rootfs, count] = process.argv.slice(2);
for (let i = 0; i <= Number(count); i++) {
  const c = await spawn(['/bin/true'], { rootfs, stdio: 'ignore' });
  const { exitCode } = await c.wait();
  if (exitCode !== 0) throw new Error(`/bin/true exited ${exitCode}`);
}

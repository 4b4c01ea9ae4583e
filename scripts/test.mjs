#!/usr/bin/env node
// `npm test`: builds, then runs every suite — cargo's unit tests, the vitest
// `unit` suite, and the privileged `integration` suite — and closes with one
// line of totals. The privileged suite needs root; when it cannot run the run
// fails (set TSBOX_ALLOW_SKIP=1 to accept that locally), so a green run always
// means it ran.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const totals = { passed: 0, failed: 0, skipped: 0 };
const problems = [];
/** Each failed test, named again just above the closing line, where a truncated log still shows it. */
const failures = [];

/** Runs a command with output passed through and also captured. */
function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function step(name, cmd, args) {
  console.log(`\n=== ${name}: ${cmd} ${args.join(' ')}`);
  return run(cmd, args);
}

async function cargo() {
  const { code, out } = await step('cargo test', 'cargo', ['test', '--workspace', '--exclude', 'tsbox-napi', '--color', 'never']);
  let seen = 0;
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    totals.passed += Number(m[1]);
    totals.failed += Number(m[2]);
    totals.skipped += Number(m[3]);
    seen++;
  }
  if (code !== 0 || seen === 0) problems.push(`cargo test exited ${code}`);
  if (code !== 0 && seen === 0) totals.failed++;
}

async function vitest(project, cmd = 'npx', args = (report) => ['vitest', 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]) {
  const dir = mkdtempSync(join(tmpdir(), 'tsbox-vitest-'));
  const report = join(dir, 'report.json');
  try {
    const { code } = await step(`vitest ${project}`, cmd, args(report));
    let r;
    try {
      r = JSON.parse(readFileSync(report, 'utf8'));
    } catch {
      r = null;
    }
    if (r) {
      totals.passed += r.numPassedTests;
      totals.failed += r.numFailedTests;
      totals.skipped += r.numPendingTests + r.numTodoTests;
      for (const file of r.testResults ?? []) {
        for (const t of file.assertionResults ?? []) {
          if (t.status !== 'failed') continue;
          const why = String(t.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300);
          failures.push(`${project}: ${String(file.name).replace(/^.*?\/(?=test\/)/, '')} > ${t.fullName}: ${why}`);
        }
      }
    }
    // A failed global setup or teardown (say, state left on the host) fails the
    // run even when every test passed.
    if (code !== 0) {
      problems.push(`vitest ${project} exited ${code}`);
      if (!r || r.numFailedTests === 0) totals.failed++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The workflow linters (schema, actionlint, pinning): one test. */
async function lintWorkflows() {
  const { code } = await step('workflow lint', 'npm', ['run', '--silent', 'lint:workflows']);
  if (code === 0) {
    totals.passed++;
  } else {
    totals.failed++;
    problems.push(`workflow lint exited ${code}`);
  }
}

const build = await step('build', process.execPath, ['scripts/build.mjs']);
if (build.code !== 0) {
  console.log('\nthe build failed; no suite ran');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
await cargo();
await vitest('unit');
await vitest('packaging');
await lintWorkflows();
if (process.getuid() === 0) {
  await vitest('integration');
  // Pure cgroup v2 in the test VM (one boot), set up by test/vm/setup.sh.
  if (existsSync(join(root, 'target/vm/initramfs.cpio.gz'))) {
    await vitest('cgroup2', 'test/vm/run-cgroup2-suite.sh', (report) => [report]);
    // The systemd cgroup driver, in a boot of the same VM whose PID 1 is systemd.
    await vitest('systemd', 'env', (report) => ['TSBOX_VM_PROJECT=systemd', 'test/vm/run-cgroup2-suite.sh', report]);
  } else {
    console.log(`\n${'!'.repeat(78)}\n!! SKIPPED: the cgroup2 suite needs the test VM: run test/vm/setup.sh as root (.ci/run does).\n${'!'.repeat(78)}`);
    if (process.env.TSBOX_ALLOW_SKIP !== '1') problems.push('the cgroup2 suite did not run (no test VM: test/vm/setup.sh)');
    totals.skipped++;
  }
} else {
  const banner = '!'.repeat(78);
  console.log(`\n${banner}\n!! SKIPPED: the integration suite needs root (it creates user namespaces with\n!! id ranges and mounts). Run \`sudo npm test\` to run it.\n${banner}`);
  if (process.env.TSBOX_ALLOW_SKIP !== '1') problems.push('the privileged integration suite did not run (not root)');
  totals.skipped++;
}

if (failures.length > 0) console.log(`\nfailed tests:\n${failures.map((f) => `  ${f}`).join('\n')}`);
if (problems.length > 0) console.log(`\nproblems: ${problems.join('; ')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(problems.length > 0 || totals.failed > 0 ? 1 : 0);

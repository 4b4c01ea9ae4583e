#!/bin/bash
# Usage: test/vm/run-cgroup2-suite.sh [REPORT.json]
# Runs the vitest `cgroup2` project (test/cgroup2/) in ONE boot of the pure
# cgroup v2 VM, as root, from this checkout (shared read-only into the guest;
# build nothing in the guest: vitest compiles the TypeScript itself). Writes
# vitest's JSON report to the job share and copies it to REPORT.json when
# given, prints the totals, and exits with vitest's status (125 when the
# guest crashed or timed out). Needs test/vm/setup.sh once. It calls
# node_modules/.bin/vitest rather than `npx vitest`: the same program, without
# npm's start-up, which takes about 30 s under emulation.
# Env: those of run.sh; TSBOX_VM_VITEST_ARGS adds vitest arguments;
# TSBOX_VM_PROJECT=systemd runs the `systemd` project (test/systemd/) instead,
# in a boot whose PID 1 is systemd (guest/stage2, tsbox_vm.systemd=1).
set -u
PROJECT=${TSBOX_VM_PROJECT:-cgroup2}
case "$PROJECT" in
  cgroup2) ;;
  systemd) export TSBOX_VM_APPEND="${TSBOX_VM_APPEND:-} tsbox_vm.systemd=1" ;;
  *) echo "TSBOX_VM_PROJECT must be cgroup2 or systemd" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${TSBOX_VM_DIR:-$REPO/target/vm}
mkdir -p "$OUT/jobs"
JOB=$(mktemp -d "$OUT/jobs/$PROJECT.XXXXXX")
trap 'rm -rf "$JOB"' EXIT
cd "$REPO"
t0=$(date +%s)
# The guest sees the host's root: run this host's node, wherever it is installed.
NODE_BIN=$(dirname "$(command -v node)")
TSBOX_VM_JOB=$JOB "$HERE/run.sh" \
  "PATH=$NODE_BIN:\$PATH node_modules/.bin/vitest run --project $PROJECT --reporter=default --reporter=json --outputFile.json=/tsbox-vm-job/report.json ${TSBOX_VM_VITEST_ARGS:-}"
rc=$?
echo "$PROJECT suite: vitest exit $rc, $(( $(date +%s) - t0 ))s in the VM (boot included)" >&2
if [ -f "$JOB/report.json" ]; then
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`'"$PROJECT"' suite: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' "$JOB/report.json" >&2
  [ -z "${1:-}" ] || cp "$JOB/report.json" "$1"
else
  echo "$PROJECT suite: no report (the guest did not get as far as vitest's end)" >&2
fi
exit $rc

#!/usr/bin/env bash
# The default seccomp filter's cost, seen from inside tsbox containers: runs
# loop.mjs under `--security-opt seccomp=unconfined` and under the default
# filter, alternately, ROUNDS times each, and prints each case's best ns/call
# for both, the difference and the ratio. README.md beside this says more.
#
#   bench/seccomp/run.sh [ROUNDS] [-- loop.mjs options]
#
# Environment: TSBOX (default: node bin/tsbox.js from this checkout),
# TSBOX_FLAGS (more `tsbox run` flags, e.g. "--rootfs /path/with/node").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
rounds=${1:-5}
shift $(( $# > 0 ? 1 : 0 ))
[[ ${1:-} == -- ]] && shift
tsbox=${TSBOX:-node $repo/bin/tsbox.js}
node=$(command -v node)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for mode in unconfined default; do
    # shellcheck disable=SC2086 # TSBOX and TSBOX_FLAGS are word lists
    $tsbox run ${TSBOX_FLAGS:-} --security-opt "seccomp=$mode" -- "$node" "$here/loop.mjs" --json "$@" >>"$out/$mode.jsonl"
  done
done

"$node" - "$out" <<'JS'
const { readFileSync } = require('node:fs');
const dir = process.argv[2];
const best = (mode) => {
  const runs = readFileSync(`${dir}/${mode}.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const want = mode === 'unconfined' ? 0 : 2;
  for (const r of runs) if (r.seccomp !== want) throw new Error(`${mode}: the container saw Seccomp: ${r.seccomp}, not ${want}`);
  const b = {};
  for (const r of runs) for (const c of r.results) b[c.case] = Math.min(b[c.case] ?? Infinity, c.nsPerCall);
  return b;
};
const u = best('unconfined');
const d = best('default');
console.log('case      unconfined   default   filter cost   ratio   (ns/call, best of all rounds)');
for (const c of Object.keys(u)) {
  console.log(`${c.padEnd(8)} ${u[c].toFixed(1).padStart(11)} ${d[c].toFixed(1).padStart(9)} ${(d[c] - u[c]).toFixed(1).padStart(13)} ${(d[c] / u[c]).toFixed(3).padStart(7)}`);
}
JS

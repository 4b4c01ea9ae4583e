#!/usr/bin/env bash
# The bench's setup (bench/README.md). Idempotent; as root.
#
#   bench/setup.sh        installs the peers from Debian's packages and builds
#                         tsbox if native/ or dist/ is missing
#   bench/setup.sh DIR    the same, then builds the shared busybox-static rootfs,
#                         the OCI bundles and the seccomp filter into DIR
#                         (bench/run.mjs does this with a temporary DIR it removes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# runc, crun, bubblewrap and util-linux's unshare are the peers; busybox-static
# fills the rootfs; python3-seccomp compiles the filter bwrap loads; strace and
# linux-perf profile the launch path; ripgrep and socat are what
# @anthropic-ai/sandbox-runtime (srt, below) needs besides bwrap.
packages=(runc crun bubblewrap util-linux busybox-static python3-seccomp strace linux-perf ripgrep socat)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench/setup.sh: missing Debian packages: ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
  echo "bench/setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -d node_modules/typescript ]] || npm ci --no-audit --no-fund

# @anthropic-ai/sandbox-runtime, the most used sandbox for Node (it drives bwrap):
# a peer, installed for the bench only, pinned, outside the project's dependencies.
SRT_VERSION=0.0.83
if [[ ! -x bench/.peers/node_modules/.bin/srt ]] || [[ $(node -p "require('./bench/.peers/node_modules/@anthropic-ai/sandbox-runtime/package.json').version" 2>/dev/null) != "$SRT_VERSION" ]]; then
  echo "bench/setup.sh: installing @anthropic-ai/sandbox-runtime@$SRT_VERSION into bench/.peers" >&2
  mkdir -p bench/.peers
  npm install --prefix bench/.peers --no-audit --no-fund --no-save --silent "@anthropic-ai/sandbox-runtime@$SRT_VERSION"
fi

triple="$(uname -m)-unknown-linux-gnu"
if ! compgen -G 'native/tsbox.*.node' >/dev/null || [[ ! -x native/tsbox-init || ! -f dist/index.js || ! -x target/static/$triple/release/tsbox-probe ]]; then
  echo "bench/setup.sh: building tsbox (node scripts/build.mjs)" >&2
  node scripts/build.mjs
fi

if (($# > 0)); then
  node bench/lib/prepare.mjs "$1"
fi

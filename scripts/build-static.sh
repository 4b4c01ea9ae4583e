#!/usr/bin/env bash
# Builds the statically linked executables: tsbox-probe (placed in test rootfs
# images) and tsbox-init (when its crate exists).
# Output: target/static/<arch>-unknown-linux-gnu/release/{tsbox-probe,tsbox-init}
#
# The explicit --target keeps +crt-static away from build scripts and proc-macros.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(-p tsbox-probe)
if [[ -f crates/tsbox-init/Cargo.toml ]]; then
  packages+=(-p tsbox-init)
fi

RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" cargo build "${packages[@]}" \
  --release --target "$(uname -m)-unknown-linux-gnu" --target-dir target/static

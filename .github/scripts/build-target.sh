#!/usr/bin/env bash
# Builds the native parts of tsbox for one Rust target and packs its platform
# package: the napi addon (tsbox.<platform>.node) and the static tsbox-init.
#
#   .github/scripts/build-target.sh <rust-target> <out-dir> [repository-url]
#
# Leaves in <out-dir>: tsbox.<platform>.node, tsbox-init (0755) and the npm
# tarball of @tsbox/<platform> (scripts/pack.mjs checks machine, linking, files and
# modes). The tarball is what CI uploads: a tarball keeps tsbox-init's run bit,
# which an uploaded artifact would not.
#
# How each target builds (see napi.rs "Cross build"):
#   *-linux-gnu   addon: --use-napi-cross (a gcc toolchain from npm with a glibc
#                 2.17 floor, so the addon loads on old distributions; checked below);
#                 helper: -C target-feature=+crt-static, as scripts/build-static.sh
#                 does, linked by the runner's gcc, or for another architecture by
#                 Debian/Ubuntu's <arch>-linux-gnu-gcc with that architecture's
#                 static glibc (apt: gcc-aarch64-linux-gnu libc6-dev-arm64-cross).
#   *-linux-musl  addon and helper: cargo-zigbuild (napi build -x); napi adds
#                 -C target-feature=-crt-static for the cdylib, and the helper is
#                 static, musl's default, asked for explicitly.
set -euo pipefail

target=${1:?usage: build-target.sh <rust-target> <out-dir> [repository-url]}
out=${2:?usage: build-target.sh <rust-target> <out-dir> [repository-url]}
repository=${3:-}

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

case "$target" in
  x86_64-unknown-linux-gnu) platform=linux-x64-gnu ;;
  aarch64-unknown-linux-gnu) platform=linux-arm64-gnu ;;
  x86_64-unknown-linux-musl) platform=linux-x64-musl ;;
  aarch64-unknown-linux-musl) platform=linux-arm64-musl ;;
  *) echo "build-target: unknown target $target" >&2; exit 2 ;;
esac

mkdir -p "$out"
out=$(cd "$out" && pwd)

case "$target" in
  *-gnu)
    cross=(--use-napi-cross)
    arch=${target%%-*}
    linker_var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_LINKER
    helper_env=()
    if [[ "$(uname -m)" != "$arch" && -z "${!linker_var:-}" ]]; then
      command -v "$arch-linux-gnu-gcc" >/dev/null || { echo "build-target: no $arch-linux-gnu-gcc to link the static helper (apt-get install gcc-$arch-linux-gnu libc6-dev-${arch/aarch64/arm64}-cross)" >&2; exit 2; }
      # Only for the helper: the addon must link with napi's glibc 2.17 toolchain.
      helper_env=("$linker_var=$arch-linux-gnu-gcc")
    fi
    ;;
  *-musl)
    helper_env=()
    command -v cargo-zigbuild >/dev/null || { echo "build-target: cargo-zigbuild is not on PATH (pip install cargo-zigbuild)" >&2; exit 2; }
    cross=(-x)
    ;;
esac

echo "::group::addon ($target)"
npx napi build --platform --release --target "$target" "${cross[@]}" \
  --manifest-path crates/tsbox-napi/Cargo.toml --package-json-path package.json \
  --output-dir "$out" --no-js --dts index.d.ts
echo "::endgroup::"

# The explicit --target keeps +crt-static away from build scripts and proc-macros.
echo "::group::tsbox-init ($target, static)"
case "$target" in
  *-gnu) build=(cargo build) ;;
  *-musl) build=(cargo zigbuild) ;;
esac
static_dir="${CARGO_TARGET_DIR:-target}/static"
env "${helper_env[@]}" RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" "${build[@]}" \
  -p tsbox-init --release --locked --target "$target" --target-dir "$static_dir"
install -m 0755 "$static_dir/$target/release/tsbox-init" "$out/tsbox-init"
echo "::endgroup::"

echo "::group::check and pack @tsbox/$platform"
file "$out/tsbox.$platform.node" "$out/tsbox-init" || true
if [[ "$target" == *-gnu ]]; then
  # The newest glibc symbol version the addon needs: its floor on the user's side.
  need=$(readelf -W -V "$out/tsbox.$platform.node" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
  echo "the addon needs $need"
  if [[ "$(printf '%s\n' "GLIBC_2.17" "$need" | sort -V | tail -n1)" != "GLIBC_2.17" ]]; then
    echo "build-target: the addon needs $need, newer than the 2.17 floor of --use-napi-cross" >&2
    exit 1
  fi
fi
node scripts/pack.mjs --platform "$platform" --from "$out" --out "$out" ${repository:+--repository "$repository"}
echo "::endgroup::"

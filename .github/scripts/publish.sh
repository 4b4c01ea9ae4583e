#!/usr/bin/env bash
# Publishes the tarballs CI packed (scripts/pack.mjs), platform packages first and
# the root package `tsbox` last, so that no published tsbox ever names a platform
# package that is not on the registry yet. Each with provenance.
#
#   .github/scripts/publish.sh <dir-with-tarballs>
#
# DRY_RUN=true passes --dry-run. A version already on the registry is skipped, so
# a release that failed half way can be run again.
set -euo pipefail

dir=${1:?usage: publish.sh <dir-with-tarballs>}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

version=$(node -p 'require("./package.json").version')
platforms=$(node --input-type=module -e '
  import { platformOf } from "./scripts/pack.mjs";
  import { readFileSync } from "node:fs";
  console.log(JSON.parse(readFileSync("package.json", "utf8")).napi.targets.map(platformOf).join(" "));')

# A prerelease (1.2.0-rc.1) must not become `latest`.
tag=latest
[[ "$version" == *-* ]] && tag=next
flags=(--provenance --access public --tag "$tag")
[[ "${DRY_RUN:-false}" == true ]] && flags+=(--dry-run)

publish() { # name tarball
  if npm view "$1@$version" version >/dev/null 2>&1; then
    echo "$1@$version is already published; skipping"
    return
  fi
  echo "::group::npm publish $1@$version"
  npm publish "$2" "${flags[@]}"
  echo "::endgroup::"
}

tarballs=()
for p in $platforms; do tarballs+=("$dir/tsbox-$p-$version.tgz"); done
tarballs+=("$dir/tsbox-$version.tgz")
for t in "${tarballs[@]}"; do
  [[ -f "$t" ]] || { echo "publish: $t is missing; nothing was published" >&2; exit 1; }
done

for p in $platforms; do publish "@tsbox/$p" "$dir/tsbox-$p-$version.tgz"; done
publish tsbox "$dir/tsbox-$version.tgz"

#!/usr/bin/env node
// `npm pack` (and `npm publish`) run this first in the checkout, and it
// refuses: tsbox is two packages, and a plain pack of the checkout would make
// one that has neither the native parts nor the dependency on the package
// that has them. scripts/pack.mjs packs both, from staged copies, without
// running this.
console.error(
  [
    'tsbox: a plain `npm pack` of the checkout makes a package that cannot run: tsbox is published as two packages.',
    'Build first (npm run build), then:',
    '  npm run pack:platform    @tsbox/<platform>: the addon and tsbox-init for this machine',
    '  npm run pack:root        tsbox: the CLI and the library, depending on every @tsbox/<platform>',
    'Install both tarballs together (npm install ./tsbox-*.tgz).',
  ].join('\n'),
);
process.exit(1);

/** tsbox's version, for --version and the OCI features document. */
import { readFileSync } from 'node:fs';

/** Put in by scripts/build.mjs, which bundles the CLI into dist/cli.cjs. */
declare const TSBOX_VERSION: string | undefined;

/** The bundle's version, else package.json's (the CLI run from its sources). */
export const version: string =
  typeof TSBOX_VERSION === 'string' ? TSBOX_VERSION : (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

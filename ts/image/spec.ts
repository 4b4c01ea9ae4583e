/**
 * The JSON a registry or an archive hands over — image indexes, manifests and
 * configs (OCI image-spec and Docker's v2 schema 2) — is hostile input: each
 * document is size-bounded by the reader, and validated here before any field
 * is used. Unknown media types are refused by name.
 */
import * as z from 'zod/mini';

import { printable, TsboxError } from '../errors.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

export const INDEX_TYPES: readonly string[] = [MEDIA.ociIndex, MEDIA.dockerList];
export const MANIFEST_TYPES: readonly string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];
const CONFIG_TYPES: readonly string[] = [MEDIA.ociConfig, MEDIA.dockerConfig];

/** Layer media types tsbox unpacks (the unpacker tells gzip, zstd and tar apart by their bytes). */
export const LAYER_TYPES: readonly string[] = [
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
];

/** The most a manifest, index or config may weigh (containers/image takes 4 MiB). */
export const MAX_DOCUMENT = 4 << 20;

const digest = z.string().check(z.regex(/^sha256:[a-f0-9]{64}$/, { message: 'is not a sha256 digest' }));
const size = z.number().check(z.int(), z.nonnegative());

export const descriptorSchema = z.object({
  mediaType: z.string(),
  digest,
  size,
  platform: z.optional(z.object({ architecture: z.string(), os: z.string(), variant: z.optional(z.string()) })),
  annotations: z.optional(z.record(z.string(), z.string())),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

export const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  manifests: z.array(descriptorSchema).check(z.maxLength(1000)),
});

export const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  config: descriptorSchema,
  layers: z.array(descriptorSchema).check(z.maxLength(500)),
});
export type Manifest = z.infer<typeof manifestSchema>;

const strings = z.optional(z.nullable(z.array(z.string())));
export const configSchema = z.object({
  architecture: z.optional(z.string()),
  os: z.optional(z.string()),
  config: z.optional(
    z.nullable(
      z.object({
        User: z.optional(z.string()),
        Env: strings,
        Entrypoint: strings,
        Cmd: strings,
        WorkingDir: z.optional(z.string()),
        StopSignal: z.optional(z.string()),
        ExposedPorts: z.optional(z.nullable(z.record(z.string(), z.unknown()))),
        Labels: z.optional(z.nullable(z.record(z.string(), z.string()))),
      }),
    ),
  ),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(digest) }),
});
export type ImageConfig = z.infer<typeof configSchema>;

function invalid(what: string, where: string, error: z.core.$ZodError): TsboxError {
  const i = error.issues[0];
  const at = i ? i.path.map(String).join('.') : '';
  return new TsboxError({ step: 'image_manifest', errno: 0, path: where, detail: `the ${what} is not valid: ${at ? `${printable(at, 200)}: ` : ''}${i?.message ?? 'invalid'}`, hint: 'the registry or archive sent a document tsbox does not accept' });
}

/** Parses a JSON document with `schema`; a TsboxError names the field that is wrong. */
export function parseDocument<T>(schema: z.ZodMiniType<T>, bytes: Buffer, what: string, where: string): T {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new TsboxError({ step: 'image_manifest', errno: 0, path: where, detail: `the ${what} is not JSON (${(err as Error).message})`, hint: null });
  }
  const r = schema.safeParse(json);
  if (!r.success) throw invalid(what, where, r.error);
  return r.data;
}

/** The kind of a manifest document, from its media type (the header's, else its own field). */
export function documentKind(mediaType: string | undefined, where: string): 'index' | 'manifest' {
  const t = (mediaType ?? '').split(';')[0]!.trim();
  if (INDEX_TYPES.includes(t)) return 'index';
  if (MANIFEST_TYPES.includes(t)) return 'manifest';
  throw new TsboxError({
    step: 'image_manifest',
    errno: 0,
    path: where,
    detail: t ? `unsupported manifest media type ${printable(t, 200)}` : 'the manifest has no media type',
    hint: 'tsbox reads OCI image manifests and indexes and Docker v2 schema 2 manifests and lists (not schema 1)',
  });
}

/** The bounds of one layer: 64 GiB of data unpacked, and as a blob; 2 million entries. */
export const MAX_LAYER_BYTES = 64 * 2 ** 30;
export const MAX_LAYER_ENTRIES = 2_000_000;

/**
 * The most layers an image may have. tsbox-init mounts them as one overlay
 * whose options (`lowerdir=/tmp/lower:/tmp/lower1:...:/tmp/lowerN,
 * upperdir=/tmp/upper,workdir=/tmp/work,userxattr`) the kernel takes in one
 * page (4096 bytes): 296 layers fit; 250 leaves room (Docker stops at 125).
 */
export const MAX_LAYERS = 250;

/** Refuses an image of more layers than one overlay mount takes, before anything of it is fetched. */
export function checkLayerCount(n: number, where: string): void {
  if (n > MAX_LAYERS) {
    throw new TsboxError({ step: 'image_manifest', errno: 7, path: where, detail: `the image has ${n} layers; tsbox runs images of at most ${MAX_LAYERS}`, hint: "the layers are mounted as one overlay, whose options must fit in a page; squash the image's layers" });
  }
}

/** The manifest's config and layers are of types tsbox reads, and within its bounds (the number of layers, each blob's size). */
export function checkManifestTypes(m: Manifest, where: string): void {
  checkLayerCount(m.layers.length, where);
  if (!CONFIG_TYPES.includes(m.config.mediaType)) {
    throw new TsboxError({ step: 'image_manifest', errno: 0, path: where, detail: `unsupported config media type ${printable(m.config.mediaType, 200)}`, hint: 'this is not a container image (an artifact?)' });
  }
  for (const l of m.layers) {
    if (!LAYER_TYPES.includes(l.mediaType)) {
      throw new TsboxError({ step: 'image_manifest', errno: 0, path: `${where} ${l.digest}`, detail: `unsupported layer media type ${printable(l.mediaType, 200)}`, hint: 'tsbox unpacks tar layers, plain, gzip or zstd' });
    }
    if (l.size > MAX_LAYER_BYTES) {
      throw new TsboxError({ step: 'image_manifest', errno: 27, path: `${where} ${l.digest}`, detail: `the layer's blob is ${l.size} bytes; tsbox takes at most ${MAX_LAYER_BYTES}`, hint: 'a layer this large is refused before it is downloaded, as a likely bomb' });
    }
  }
}

/** The platform this process runs containers for, in OCI's words. */
export function hostPlatform(arch: string = process.arch): { os: string; architecture: string; variant?: string } {
  if (arch === 'x64') return { os: 'linux', architecture: 'amd64' };
  if (arch === 'arm64') return { os: 'linux', architecture: 'arm64', variant: 'v8' };
  return { os: 'linux', architecture: arch };
}

/** The index entry for the host's platform (a variant-less entry matches too); a TsboxError lists the ones there are. */
export function choosePlatform(manifests: readonly Descriptor[], where: string, arch: string = process.arch): Descriptor {
  const want = hostPlatform(arch);
  const fits = manifests.filter((d) => d.platform?.os === want.os && d.platform.architecture === want.architecture && MANIFEST_TYPES.includes(d.mediaType));
  const exact = fits.find((d) => want.variant !== undefined && d.platform?.variant === want.variant);
  const chosen = exact ?? fits.find((d) => d.platform?.variant === undefined) ?? fits[0];
  if (chosen) return chosen;
  const there = manifests.map((d) => (d.platform ? printable(`${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}`, 100) : '?')).join(', ');
  throw new TsboxError({ step: 'image_platform', errno: 0, path: where, detail: `the image has no ${want.os}/${want.architecture} manifest (it has: ${there || 'none'})`, hint: 'pull an image built for this machine' });
}

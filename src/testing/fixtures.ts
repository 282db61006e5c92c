// Test images with real digests: gzip layers of seeded random bytes, configs, manifests and indexes.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export interface Blob {
  readonly digest: string;
  readonly data: Buffer;
  readonly mediaType: string;
  /** For layers: digest of the uncompressed content (what image configs list in rootfs.diff_ids). */
  readonly diffId?: string;
}

export interface Manifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly data: Buffer;
}

export interface Image {
  readonly manifest: Manifest;
  readonly config: Blob;
  readonly layers: readonly Blob[];
  /** Every blob (config + layers). */
  readonly blobs: readonly Blob[];
}

export interface MultiArchImage {
  readonly index: Manifest;
  readonly images: readonly Image[];
}

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Deterministic pseudo-random bytes (xorshift), so fixtures are identical across runs. */
export function seededBytes(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < size; i++) buf[i] = (seed + i) & 0xff;
  return buf;
}

/** A gzip layer (level 1; random content barely shrinks) so clients see real compressed layers. */
export function layer(size: number, seed: number, mediaType = 'application/vnd.docker.image.rootfs.diff.tar.gzip'): Blob {
  const raw = seededBytes(size, seed);
  const data = gzipSync(raw, { level: 1 });
  return { digest: sha256(data), data, mediaType, diffId: sha256(raw) };
}

export function image(opts: { layers: readonly Blob[]; arch?: string; oci?: boolean; seed?: number }): Image {
  const oci = opts.oci ?? false;
  const config = Buffer.from(JSON.stringify({
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    created: '2026-01-01T00:00:00Z',
    config: { Cmd: ['/bin/sh'], Labels: { seed: String(opts.seed ?? 0) } },
    rootfs: { type: 'layers', diff_ids: opts.layers.map((l) => l.diffId ?? l.digest) },
  }));
  const configBlob: Blob = {
    digest: sha256(config),
    data: config,
    mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json',
  };
  const mediaType = oci ? OCI_MANIFEST : DOCKER_MANIFEST;
  const data = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: configBlob.mediaType, size: config.length, digest: configBlob.digest },
    layers: opts.layers.map((l) => ({
      mediaType: oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : l.mediaType,
      size: l.data.length,
      digest: l.digest,
    })),
  }, null, 3));
  return { manifest: { digest: sha256(data), mediaType, data }, config: configBlob, layers: opts.layers, blobs: [configBlob, ...opts.layers] };
}

export function multiArch(images: readonly Image[], oci = false): MultiArchImage {
  const mediaType = oci ? OCI_INDEX : DOCKER_LIST;
  const data = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({
      mediaType: img.manifest.mediaType,
      size: img.manifest.data.length,
      digest: img.manifest.digest,
      platform: { architecture: archOf(img), os: 'linux' },
    })),
  }, null, 3));
  return { index: { digest: sha256(data), mediaType, data }, images };
}

function archOf(img: Image): string {
  return (JSON.parse(img.config.data.toString('utf8')) as { architecture: string }).architecture;
}

/** A minimal ustar archive of regular files (what container engines extract from a layer). */
export function tar(files: ReadonlyArray<{ readonly name: string; readonly content: Buffer; readonly mode?: number }>): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string) => h.write(value, offset, length, 'ascii');
    const octal = (offset: number, length: number, n: number) => field(offset, length, `${n.toString(8).padStart(length - 1, '0')}\0`);
    field(0, 100, f.name);
    octal(100, 8, f.mode ?? 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, f.content.length);
    octal(136, 12, 1_700_000_000);
    field(148, 8, '        ');
    field(156, 1, '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    let sum = 0;
    for (const b of h) sum += b;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    parts.push(h, f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A gzip'd tar layer holding the given files. */
export function tarLayer(files: ReadonlyArray<{ readonly name: string; readonly content: Buffer; readonly mode?: number }>): Blob {
  const raw = tar(files);
  const data = gzipSync(raw, { level: 1 });
  return { digest: sha256(data), data, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', diffId: sha256(raw) };
}

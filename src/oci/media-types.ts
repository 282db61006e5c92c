// Manifest media types and Accept handling: clients send Accept lists in any order, so it is a set.

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const BLOB_CONTENT_TYPE = 'application/octet-stream';

/** What regcache asks every upstream for, so one cached answer serves every client. */
export const UPSTREAM_MANIFEST_ACCEPT = [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX].join(', ');

/** Parses one or many Accept headers into a set of bare media types (parameters dropped). */
export function parseAccept(header: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const value of values) {
    for (const part of value.split(',')) {
      const type = part.split(';')[0]?.trim().toLowerCase();
      if (type) out.add(type);
    }
  }
  return out;
}

/**
 * The media type to answer with for stored JSON content: the Content-Type the upstream sent,
 * else the body's own `mediaType`, else a guess from its shape (docker schema2 before OCI).
 */
export function manifestMediaType(contentType: string | undefined, body: Uint8Array): string {
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  if (declared && declared !== 'application/json' && declared !== 'text/plain' && declared !== 'application/octet-stream') {
    return declared;
  }
  try {
    const parsed: unknown = JSON.parse(Buffer.from(body).toString('utf8'));
    if (parsed && typeof parsed === 'object') {
      const record = parsed as Record<string, unknown>;
      if (typeof record['mediaType'] === 'string') return record['mediaType'];
      if (Array.isArray(record['manifests'])) return OCI_INDEX;
      if (record['schemaVersion'] === 1) return DOCKER_MANIFEST_V1_SIGNED;
      if (record['config']) return OCI_MANIFEST;
    }
  } catch {
    // not JSON: keep what was declared
  }
  return declared ?? OCI_MANIFEST;
}

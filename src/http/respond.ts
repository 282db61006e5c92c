// Writing responses: OCI error JSON everywhere, and byte ranges for blobs (RFC 9110, single range).
import type { ServerResponse } from 'node:http';
import { OciError, toOciError } from '../oci/errors.ts';

export const API_VERSION_HEADER = { 'docker-distribution-api-version': 'registry/2.0' } as const;

export function sendError(res: ServerResponse, err: unknown, method: string): void {
  const oci = toOciError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(oci.toJSON());
  res.writeHead(oci.status, {
    ...API_VERSION_HEADER,
    ...oci.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(method === 'HEAD' ? undefined : body);
}

export interface ByteRange {
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/**
 * Parses a Range header against a known length. undefined = no (usable) Range: send everything.
 * Multiple ranges are refused rather than answered with multipart bodies no registry client reads.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) {
    if (/^\s*bytes\s*=.*,/.test(header)) throw rangeError('multiple ranges are not supported', size);
    throw rangeError(`malformed Range "${header.slice(0, 80)}"`, size);
  }
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') throw rangeError('empty range', size);
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) throw rangeError('empty suffix range', size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (b !== '' && Number(b) < start)) {
    throw rangeError(`range ${a}-${b} not satisfiable for ${size} bytes`, size);
  }
  return { start, end };
}

function rangeError(message: string, size: number): OciError {
  return new OciError('RANGE_INVALID', message, { headers: { 'content-range': `bytes */${size}` } });
}

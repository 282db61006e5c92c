// Typed upstream failures; each knows whether a stale cached answer may stand in for it.
import { OciError, type OciErrorCode } from '../oci/errors.ts';

export type UpstreamFailure =
  | 'unreachable' // connection refused, DNS, reset before a response
  | 'timeout' // no response headers, or no body bytes, within the configured time
  | 'throttled' // 429
  | 'server' // 5xx
  | 'denied' // 401/403 after authenticating
  | 'not-found' // 404
  | 'status' // any other unexpected status
  | 'invalid'; // a response that breaks the protocol (digest/size mismatch, bad JSON, bad redirect)

export class UpstreamError extends Error {
  readonly upstream: string;
  readonly failure: UpstreamFailure;
  readonly status: number | undefined;
  readonly oci: OciError;

  constructor(upstream: string, failure: UpstreamFailure, oci: OciError, opts: { status?: number; cause?: unknown } = {}) {
    super(`${upstream}: ${oci.message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UpstreamError';
    this.upstream = upstream;
    this.failure = failure;
    this.status = opts.status;
    this.oci = oci;
  }

  /** Upstream trouble that a cached answer may cover (stale-if-error). */
  get transient(): boolean {
    return this.failure === 'unreachable' || this.failure === 'timeout' || this.failure === 'throttled' || this.failure === 'server';
  }

  toOciError(): OciError {
    return this.oci;
  }
}

/** Content from an upstream whose digest or length does not match what was asked for. */
export class VerificationError extends UpstreamError {
  constructor(upstream: string, message: string, code: OciErrorCode = 'UPSTREAM_INVALID') {
    super(upstream, 'invalid', new OciError(code, message, { status: 502 }));
    this.name = 'VerificationError';
  }
}

const NETWORK_TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Wraps a thrown network-level error (undici or system) as an UpstreamError. */
export function networkError(upstream: string, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  if (NETWORK_TIMEOUT_CODES.has(code)) {
    return new UpstreamError(upstream, 'timeout', new OciError('UPSTREAM_TIMEOUT', `upstream ${upstream} timed out`), { cause: err });
  }
  return new UpstreamError(
    upstream,
    'unreachable',
    new OciError('UPSTREAM_UNAVAILABLE', `upstream ${upstream} unreachable${code ? ` (${code})` : ''}`),
    { cause: err },
  );
}

/**
 * Maps an upstream error status to what the client sees. Upstream error codes are passed through
 * when they are known OCI codes (e.g. MANIFEST_UNKNOWN), with the upstream's message.
 */
export function statusError(
  upstream: string,
  status: number,
  body: string,
  fallback: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_UNKNOWN',
  retryAfter?: string,
): UpstreamError {
  const upstreamMessage = firstErrorMessage(body);
  if (status === 404) {
    return new UpstreamError(upstream, 'not-found', new OciError(fallback, upstreamMessage ?? undefined), { status });
  }
  if (status === 429) {
    const headers: Record<string, string> = retryAfter ? { 'retry-after': retryAfter } : {};
    return new UpstreamError(
      upstream,
      'throttled',
      new OciError('TOOMANYREQUESTS', `upstream ${upstream} rate limit: ${upstreamMessage ?? 'too many requests'}`, { headers }),
      { status },
    );
  }
  if (status === 401 || status === 403) {
    return new UpstreamError(
      upstream,
      'denied',
      new OciError('DENIED', `upstream ${upstream} denied access (the repository does not exist or needs credentials)`),
      { status },
    );
  }
  if (status >= 500) {
    return new UpstreamError(upstream, 'server', new OciError('UPSTREAM_UNAVAILABLE', `upstream ${upstream} answered ${status}`), { status });
  }
  return new UpstreamError(upstream, 'status', new OciError('UPSTREAM_INVALID', `upstream ${upstream} answered unexpected status ${status}`), { status });
}

/** The first `errors[].message` of an OCI error body; tolerates non-JSON bodies (Hub's HAP429). */
function firstErrorMessage(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ message?: unknown }> };
    const message = parsed.errors?.[0]?.message;
    return typeof message === 'string' && message.length > 0 ? message.slice(0, 500) : undefined;
  } catch {
    return undefined;
  }
}

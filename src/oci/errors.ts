// The OCI error registry: every error a client can see has a code here, one status and one meaning.

/** code → HTTP status and default message (distribution-spec "Error Codes" plus TOOMANYREQUESTS). */
export const OCI_ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  MANIFEST_INVALID: { status: 502, message: 'manifest invalid' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  SIZE_INVALID: { status: 502, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  NOT_FOUND: { status: 404, message: 'no such endpoint' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UPSTREAM_UNAVAILABLE: { status: 503, message: 'upstream registry unavailable' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'upstream registry timed out' },
  UPSTREAM_INVALID: { status: 502, message: 'upstream registry answered with invalid content' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type OciErrorCode = keyof typeof OCI_ERRORS;

/** An error that reaches the client as `{"errors":[{code,message,detail}]}` with the registry's status. */
export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. Retry-After on 429). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: OciErrorCode,
    message?: string,
    opts: { detail?: unknown; status?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message ?? OCI_ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OciError';
    this.code = code;
    this.status = opts.status ?? OCI_ERRORS[code].status;
    this.detail = opts.detail ?? {};
    this.headers = opts.headers ?? {};
  }

  toJSON(): { errors: Array<{ code: string; message: string; detail: unknown }> } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail }] };
  }
}

/** Internal errors that know their client-facing form (mapped only at the HTTP edge). */
export interface HasOciError {
  toOciError(): OciError;
}

/** Maps anything thrown to an OciError; unknown errors become 500 UNKNOWN without leaking internals. */
export function toOciError(err: unknown): OciError {
  if (err instanceof OciError) return err;
  const mapped = (err as Partial<HasOciError> | null)?.toOciError;
  if (typeof mapped === 'function') return mapped.call(err);
  return new OciError('UNKNOWN', undefined, { cause: err });
}

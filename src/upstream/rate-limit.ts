// Docker Hub's pull budget as announced in `ratelimit-limit: 100;w=21600` / `ratelimit-remaining: 76;w=21600`.

export interface RateLimitState {
  limit?: number;
  remaining?: number;
  windowSeconds?: number;
  /** Unix ms of the last response that carried the headers. */
  updatedAt?: number;
}

export interface ParsedRateLimit {
  readonly value: number;
  readonly windowSeconds: number | undefined;
}

/** Parses "<n>;w=<seconds>" (other parameters ignored); undefined when absent or malformed. */
export function parseRateLimitHeader(header: string | string[] | undefined): ParsedRateLimit | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (!raw) return undefined;
  const [first, ...params] = raw.split(';');
  const value = Number(first?.trim());
  if (!Number.isFinite(value) || value < 0 || first?.trim() === '') return undefined;
  let windowSeconds: number | undefined;
  for (const p of params) {
    const [k, v] = p.split('=').map((s) => s.trim());
    if (k === 'w' && v !== undefined && /^\d+$/.test(v)) windowSeconds = Number(v);
  }
  return { value, windowSeconds };
}

/** Updates `state` from a response's headers; returns true when anything was announced. */
export function recordRateLimit(state: RateLimitState, headers: Record<string, string | string[] | undefined>, now = Date.now()): boolean {
  const limit = parseRateLimitHeader(headers['ratelimit-limit']);
  const remaining = parseRateLimitHeader(headers['ratelimit-remaining']);
  if (!limit && !remaining) return false;
  if (limit) state.limit = limit.value;
  if (remaining) state.remaining = remaining.value;
  const windowSeconds = limit?.windowSeconds ?? remaining?.windowSeconds;
  if (windowSeconds !== undefined) state.windowSeconds = windowSeconds;
  state.updatedAt = now;
  return true;
}

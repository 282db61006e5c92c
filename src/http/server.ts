// The HTTP edge: routes requests, maps every failure to OCI error JSON, writes the access log, and
// shrugs off non-HTTP bytes (podman and docker probe plain-HTTP ports with a TLS ClientHello first).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { handleBlob } from '../handlers/blobs.ts';
import type { HandlerContext, RequestNote } from '../handlers/context.ts';
import { handleManifest } from '../handlers/manifests.ts';
import { handleTags } from '../handlers/tags.ts';
import { OciError, toOciError } from '../oci/errors.ts';
import type { RequestKind, RequestResult } from '../observability/metrics.ts';
import type { AdminApi } from './admin.ts';
import type { ClientAuth } from './client-auth.ts';
import { API_VERSION_HEADER, sendError } from './respond.ts';
import type { Route, Router } from './router.ts';

/**
 * Per-socket write buffer. At Node's 64 KiB default every blob chunk hits backpressure and the
 * stream ping-pongs on 'drain'; 1 MiB keeps the socket fed while bounding memory per client.
 */
const SOCKET_BUFFER = 1 << 20;

export interface ServerState {
  ready: boolean;
  /** Why the daemon cannot serve (store not writable, metadata closed); undefined when it can. */
  check?: () => Promise<string | undefined>;
  /** /metrics is served on its own listener (metrics.listen), not here. */
  metricsElsewhere?: boolean;
}

export interface ClientLimits {
  readonly headersTimeoutMs: number;
  readonly clientIdleTimeoutMs: number;
}

export function createHttpServer(ctx: HandlerContext, router: Router, state: ServerState, admin: AdminApi, auth?: ClientAuth, limits: ClientLimits = { headersTimeoutMs: 30_000, clientIdleTimeoutMs: 300_000 }): Server {
  // No overall request timeout: a large layer to a slow client legitimately takes long. A client
  // that sends nothing and reads nothing for clientIdleTimeout is dropped instead.
  const server = createServer({
    requestTimeout: 0,
    headersTimeout: limits.headersTimeoutMs,
    // How often Node enforces headersTimeout (its default, 30 s, would stretch a short limit).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, limits.headersTimeoutMs / 4)),
    maxHeaderSize: 16 * 1024,
    highWaterMark: SOCKET_BUFFER,
  }, (req, res) => {
    void handle(ctx, router, state, admin, auth, req, res);
  });
  server.setTimeout(limits.clientIdleTimeoutMs);
  server.keepAliveTimeout = 65_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    ctx.log.debug({ code: err.code, remote: socket.remoteAddress }, 'malformed request dropped');
    // A TLS ClientHello (first byte 0x16) gets the connection closed: the client then retries over HTTP.
    const tls = (err as { rawPacket?: Buffer }).rawPacket?.[0] === 0x16;
    if (socket.writable && !tls) {
      const overflow = err.code === 'HPE_HEADER_OVERFLOW';
      const slow = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const [status, message] = overflow ? ['431 Request Header Fields Too Large', 'request headers too large'] : slow ? ['408 Request Timeout', 'request headers not received in time'] : ['400 Bad Request', 'malformed HTTP request'];
      const body = JSON.stringify(new OciError('UNSUPPORTED', message, { status: Number(status.slice(0, 3)) }).toJSON());
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  });
  return server;
}

async function handle(ctx: HandlerContext, router: Router, state: ServerState, admin: AdminApi, auth: ClientAuth | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const written = req.socket.bytesWritten;
  const method = req.method ?? 'GET';
  const note: RequestNote = {};
  let route: Route | undefined;
  try {
    // Registry paths need credentials when auth is configured, before anything about them is revealed.
    if (auth && (req.url === '/v2' || req.url?.startsWith('/v2/'))) await auth.check(req.headers.authorization, req.socket.remoteAddress);
    route = router.route(method, req.url ?? '/', req.headers.host);
    // Allow/deny lists are checked before anything else, cached or not: policy is policy.
    if (route.kind === 'manifest' || route.kind === 'blob' || route.kind === 'tags') ctx.policy.checkRepository(route.upstream, route.repo);
    switch (route.kind) {
      case 'ping':
        res.writeHead(200, { ...API_VERSION_HEADER, 'content-type': 'application/json', 'content-length': 2 });
        res.end(method === 'HEAD' ? undefined : '{}');
        return;
      case 'health':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case 'ready': {
        const problem = state.ready ? await state.check?.() : 'shutting down';
        res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(problem ? `${problem}\n` : 'ready\n');
        return;
      }
      case 'metrics': {
        if (state.metricsElsewhere) throw new OciError('NOT_FOUND', 'metrics are served on metrics.listen');
        const text = await ctx.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': ctx.metrics.registry.contentType }).end(text);
        return;
      }
      case 'admin':
        await admin.handle(route.path, req, res);
        return;
      case 'manifest':
        await handleManifest(ctx, route, req, res, note);
        break;
      case 'blob':
        await handleBlob(ctx, route, req, res, note);
        break;
      case 'tags':
        await handleTags(ctx, route, req, res, note);
        break;
    }
  } catch (err) {
    const oci = toOciError(err);
    note.result = oci.code === 'DENIED' ? 'denied' : 'error';
    // The engines hide a mirror's error behind their fallback to Docker Hub: this log field is
    // where an operator finds the real reason.
    note.error = `${oci.code}: ${oci.message}`;
    if (oci.status >= 500) ctx.log.error({ err: describe(err), url: req.url }, 'request failed');
    sendError(res, err, method);
  } finally {
    if (route && (route.kind === 'manifest' || route.kind === 'blob' || route.kind === 'tags')) {
      ctx.metrics.requests.labels(route.upstream, route.kind satisfies RequestKind, method, metricResult(note.result)).inc();
      ctx.log.info({
        method,
        url: req.url,
        status: res.statusCode,
        upstream: route.upstream,
        scope: route.scope,
        result: note.result,
        digest: note.digest,
        bytes: req.socket.bytesWritten - written, // on the wire, headers included
        error: note.error,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ua: req.headers['user-agent'],
      }, 'request');
    } else if (route?.kind === 'admin') {
      ctx.log.info({ method, url: req.url?.slice(0, 300), status: res.statusCode }, 'admin request');
    } else if (res.statusCode >= 400) {
      ctx.log.info({ method, url: req.url?.slice(0, 300), status: res.statusCode, error: note.error }, 'request');
    }
  }
}

function metricResult(result: string | undefined): RequestResult {
  switch (result) {
    case 'hit':
    case 'stale':
    case 'revalidated':
    case 'pinned':
    case 'denied':
    case 'error':
      return result;
    default:
      return 'miss';
  }
}

function describe(err: unknown): unknown {
  if (err instanceof Error) return { type: err.name, message: err.message, cause: err.cause instanceof Error ? err.cause.message : undefined, stack: err.stack };
  return String(err);
}

// Addresses an upstream may never send regcache to, through a redirect or a token realm: cloud
// metadata services and link-local/unspecified addresses (the classic SSRF targets).
import { isIP } from 'node:net';

/** Metadata endpoints outside the link-local ranges. */
const METADATA = new Set(['fd00:ec2::254', '100.100.100.200']);

/** True for a literal IP (brackets allowed) that is link-local, unspecified or a metadata service. */
export function isBlockedAddress(hostname: string): boolean {
  let ip = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(ip) === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped?.[1]) ip = mapped[1];
  return ip.startsWith('169.254.') || /^fe[89ab]/.test(ip) || ip === '0.0.0.0' || ip === '::' || METADATA.has(ip);
}

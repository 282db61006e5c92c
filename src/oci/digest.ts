// Digest grammar (algorithm:hex) and the hashing used to verify content against it.
import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.ts';

export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** Canonical "algorithm:hex" form. */
  readonly value: string;
}

/** Parses a digest; only registered algorithms with lowercase hex of the exact length are accepted. */
export function parseDigest(input: string): Digest {
  const colon = input.indexOf(':');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (colon <= 0 || !(algorithm === 'sha256' || algorithm === 'sha512')) {
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm in "${clip(input)}"`, { status: 400 });
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${algorithm} digest "${clip(input)}"`, { status: 400 });
  }
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function isDigest(input: string): boolean {
  return /^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$/.test(input);
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

// Repository name and tag grammar of the distribution spec.
import { OciError } from './errors.ts';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** distribution rejects names over 255 characters. */
export const MAX_NAME_LENGTH = 255;

export function assertName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new OciError('NAME_INVALID', `invalid repository name "${name.slice(0, 300)}"`);
  }
}

export function isTag(ref: string): boolean {
  return TAG_RE.test(ref);
}

export function assertTag(tag: string): void {
  if (!isTag(tag)) throw new OciError('TAG_INVALID', `invalid tag "${tag.slice(0, 200)}"`, { status: 400 });
}

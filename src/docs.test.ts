// The docs stay true: every relative link in README.md, docs/, bench/README.md and
// deploy/ points at a file that exists (and at a heading that exists, for #anchors).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

const repo = join(import.meta.dirname, '..');

/** GitHub's heading anchors: lower-case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) out.add(m[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-'));
  return out;
}

describe('documentation links', () => {
  it('every relative link and anchor resolves', async () => {
    const files = ['README.md', 'bench/README.md', ...(await readdir(join(repo, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    let checked = 0;
    for (const f of files) {
      const text = await readFile(join(repo, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue; // external
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? join(repo, f) : join(repo, dirname(f), path);
        assert.ok(existsSync(file), `${f}: link ${target} points at a missing file`);
        if (anchor && file.endsWith('.md')) assert.ok(anchors(await readFile(file, 'utf8')).has(anchor), `${f}: #${anchor} is not a heading of ${path || f}`);
        checked++;
      }
    }
    assert.ok(checked >= 10, `links were found (${checked})`);
  });
});

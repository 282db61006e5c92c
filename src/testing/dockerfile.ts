// A small Dockerfile reader for tests: no Docker engine runs here, so the Dockerfile is checked by
// parsing it and replaying its steps in a scratch folder. Handles what this project's Dockerfile
// uses (comments, `\` continuations, JSON and shell forms, stages), not the whole grammar.

export interface Instruction {
  readonly line: number;
  /** Upper-cased keyword: FROM, RUN, COPY... */
  readonly cmd: string;
  /** Everything after the keyword, continuations joined with a space. */
  readonly args: string;
  /** The JSON (exec) form's array when the arguments are one. */
  readonly exec: readonly string[] | undefined;
}

export interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Array<{ from: string; name: string | undefined; instructions: Instruction[] }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let logical = lines[i]!.trim();
    if (logical === '' || logical.startsWith('#')) continue;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i]!.trim();
      if (next.startsWith('#')) continue; // comment lines inside a continuation are dropped
      logical = `${logical.slice(0, -1).trimEnd()} ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(logical)!;
    const cmd = m[1]!.toUpperCase();
    const args = m[2]!;
    const ins: Instruction = { line: start + 1, cmd, args, exec: execForm(args) };
    if (cmd === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) throw new Error(`line ${start + 1}: FROM ${args}`);
      stages.push({ from: f[1]!, name: f[2], instructions: [ins] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`line ${start + 1}: ${cmd} before FROM`);
    stage.instructions.push(ins);
  }
  return stages;
}

function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `KEY=value KEY2="v 2"` (ENV/LABEL/ARG) → pairs. */
export function keyValues(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    const v = m[2]!;
    out[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
  }
  return out;
}

/** Options of HEALTHCHECK/COPY (`--from=deps --chown=…`) and what follows them. */
export function splitOptions(args: string): { options: Record<string, string>; rest: string } {
  const options: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest);
    if (!m) return { options, rest };
    options[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
}

/** A .dockerignore pattern matcher (`*`, `**`, leading `!` not supported: not used here). */
export function dockerIgnore(text: string): (path: string) => boolean {
  const res = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((p) => {
      const src = p
        .replace(/^\/+|\/+$/g, '')
        .split('/')
        .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return new RegExp(`^${src}(?:/.*)?$`);
    });
  return (path) => res.some((r) => r.test(path));
}

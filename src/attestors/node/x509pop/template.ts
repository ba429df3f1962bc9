/**
 * @module attestors/node/x509pop/template
 *
 * SPIRE's `agent_path_template` (pkg/common/agentpathtemplate): a Go text/template run with
 * `missingkey=error` over the leaf certificate and the plugin's values. Mayfly reads the
 * part of that language an agent path needs:
 * - text, and actions `{{ pipeline }}` with Go's `{{-` / `-}}` whitespace trimming;
 * - a pipeline is commands joined by `|` (the value flows in as the last argument);
 * - a command is a field chain (`.Subject.CommonName`, `.URISanSelectors.key`), a quoted
 *   string, an integer, or a function with arguments: Go's `index`, and from sprig's list
 *   the string functions `lower upper title trim trimAll trimPrefix trimSuffix replace
 *   trunc substr nospace sha1sum sha256sum b64enc toString base dir clean ext`.
 * Control structures (`if`, `range`, `with`, variables) are refused when the server reads
 * its configuration, naming the construct, rather than misread. A field that does not
 * exist or a map key that is missing fails the attestation, as SPIRE's does.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';

/** A value a template can reach: strings, lists of strings, numbers, and records of them. */
export type TemplateValue = string | number | readonly string[] | TemplateRecord;
export interface TemplateRecord {
  readonly [field: string]: TemplateValue | undefined;
}

type Arg = { readonly kind: 'field'; readonly path: readonly string[] } | { readonly kind: 'lit'; readonly value: string | number };
interface Command {
  readonly fn?: string;
  readonly args: readonly Arg[];
}
type Node = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'action'; readonly pipeline: readonly Command[] };

const str = (v: TemplateValue): string => {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${(v as readonly string[]).join(' ')}]`;
  const s = (v as TemplateRecord).String;
  return typeof s === 'string' ? s : '[record]';
};
const int = (v: TemplateValue, fn: string): number => {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n)) throw new Error(`${fn}: ${str(v)} is not an integer`);
  return n;
};

type Fn = (args: TemplateValue[]) => TemplateValue;
const s1 = (f: (s: string) => string): Fn => (a) => f(str(a[0] as TemplateValue));
const FUNCS: Readonly<Record<string, { readonly arity: number; readonly fn: Fn }>> = {
  lower: { arity: 1, fn: s1((s) => s.toLowerCase()) },
  upper: { arity: 1, fn: s1((s) => s.toUpperCase()) },
  title: { arity: 1, fn: s1((s) => s.replace(/(^|[\s])(\p{L})/gu, (_m, p: string, c: string) => p + c.toUpperCase())) },
  trim: { arity: 1, fn: s1((s) => s.trim()) },
  nospace: { arity: 1, fn: s1((s) => s.replace(/\s+/g, '')) },
  sha1sum: { arity: 1, fn: s1((s) => createHash('sha1').update(s).digest('hex')) },
  sha256sum: { arity: 1, fn: s1((s) => createHash('sha256').update(s).digest('hex')) },
  b64enc: { arity: 1, fn: s1((s) => Buffer.from(s).toString('base64')) },
  toString: { arity: 1, fn: s1((s) => s) },
  base: { arity: 1, fn: s1((s) => posix.basename(s) || '.') },
  dir: { arity: 1, fn: s1((s) => posix.dirname(s)) },
  clean: { arity: 1, fn: s1((s) => posix.normalize(s).replace(/(.)\/$/, '$1')) },
  ext: { arity: 1, fn: s1((s) => posix.extname(s)) },
  trimAll: { arity: 2, fn: (a) => { const cut = str(a[0] as TemplateValue); let s = str(a[1] as TemplateValue); while (cut !== '' && s.length > 0 && cut.includes(s[0] as string)) s = s.slice(1); while (cut !== '' && s.length > 0 && cut.includes(s[s.length - 1] as string)) s = s.slice(0, -1); return s; } },
  trimPrefix: { arity: 2, fn: (a) => { const p = str(a[0] as TemplateValue); const s = str(a[1] as TemplateValue); return s.startsWith(p) ? s.slice(p.length) : s; } },
  trimSuffix: { arity: 2, fn: (a) => { const p = str(a[0] as TemplateValue); const s = str(a[1] as TemplateValue); return p !== '' && s.endsWith(p) ? s.slice(0, -p.length) : s; } },
  replace: { arity: 3, fn: (a) => str(a[2] as TemplateValue).split(str(a[0] as TemplateValue)).join(str(a[1] as TemplateValue)) },
  trunc: { arity: 2, fn: (a) => { const n = int(a[0] as TemplateValue, 'trunc'); const s = str(a[1] as TemplateValue); return n >= 0 ? s.slice(0, n) : s.slice(Math.max(0, s.length + n)); } },
  substr: { arity: 3, fn: (a) => { const s = str(a[2] as TemplateValue); const b = int(a[0] as TemplateValue, 'substr'); const e = int(a[1] as TemplateValue, 'substr'); return b < 0 ? s.slice(0, e) : e < 0 || e > s.length ? s.slice(b) : s.slice(b, e); } },
  index: { arity: 2, fn: (a) => indexInto(a[0] as TemplateValue, a[1] as TemplateValue) },
};

function indexInto(v: TemplateValue, key: TemplateValue): TemplateValue {
  if (Array.isArray(v)) {
    const i = int(key, 'index');
    const item = (v as readonly string[])[i];
    if (item === undefined) throw new Error(`index out of range: ${i}`);
    return item;
  }
  if (typeof v === 'object') {
    const item = (v as TemplateRecord)[str(key)];
    if (item === undefined) throw new Error(`map has no entry for key "${str(key)}"`);
    return item;
  }
  throw new Error(`cannot index ${typeof v}`);
}

const TOKEN = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|-?\d+|\.[A-Za-z0-9_.]*|[A-Za-z_][A-Za-z0-9_]*|\||\(|\)|\$\S*|\S)/y;

function parseAction(src: string): Command[] {
  const body = src.trim();
  if (body.startsWith('/*')) throw new Error('comments are not supported');
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(body); m !== null && m.index < body.length; m = TOKEN.exec(body)) tokens.push(m[1] as string);
  if (tokens.length === 0) throw new Error('empty action {{ }}');
  const commands: Command[] = [];
  let cur: string[] = [];
  const flush = (): void => {
    if (cur.length === 0) throw new Error('missing command in pipeline');
    const [head, ...rest] = cur as [string, ...string[]];
    if (cur.some((t) => t.startsWith('$'))) throw new Error('variables are not supported');
    if (cur.some((t) => t === '(' || t === ')')) throw new Error('parenthesised pipelines are not supported');
    const arg = (t: string): Arg => {
      if (t.startsWith('"')) return { kind: 'lit', value: JSON.parse(t) as string };
      if (t.startsWith('`')) return { kind: 'lit', value: t.slice(1, -1) };
      if (/^-?\d+$/.test(t)) return { kind: 'lit', value: Number(t) };
      if (t.startsWith('.')) {
        const path = t === '.' ? [] : t.slice(1).split('.');
        if (path.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) throw new Error(`bad field ${t}`);
        return { kind: 'field', path };
      }
      if (t.startsWith('$')) throw new Error('variables are not supported');
      if (t === '(' || t === ')') throw new Error('parenthesised pipelines are not supported');
      throw new Error(`${JSON.stringify(t)} is not supported (functions take arguments only in first position)`);
    };
    if (/^[A-Za-z_]/.test(head)) {
      const f = FUNCS[head];
      if (f === undefined) throw new Error(`function or keyword ${JSON.stringify(head)} is not supported (supported: ${Object.keys(FUNCS).join(', ')})`);
      const piped = commands.length > 0 ? 1 : 0;
      if (rest.length + piped !== f.arity) throw new Error(`${head} takes ${f.arity} argument(s)`);
      commands.push({ fn: head, args: rest.map(arg) });
    } else {
      if (rest.length > 0) throw new Error(`${head} is not a function; it takes no arguments`);
      if (commands.length > 0) throw new Error(`${head} cannot receive a piped value`);
      commands.push({ args: [arg(head)] });
    }
    cur = [];
  };
  for (const t of tokens) {
    if (t === '|') flush();
    else cur.push(t);
  }
  flush();
  return commands;
}

/** A parsed template. */
export class AgentPathTemplate {
  readonly source: string;
  readonly #nodes: readonly Node[];

  private constructor(source: string, nodes: readonly Node[]) {
    this.source = source;
    this.#nodes = nodes;
  }

  /** Parses `source`; throws Error naming what is not understood. */
  static parse(source: string): AgentPathTemplate {
    if (typeof source !== 'string') throw new TypeError('template source must be a string');
    const nodes: Node[] = [];
    let rest = source;
    let trimNext = false;
    while (rest.length > 0) {
      const open = rest.indexOf('{{');
      let text = open < 0 ? rest : rest.slice(0, open);
      if (trimNext) text = text.replace(/^\s+/, '');
      trimNext = false;
      if (open < 0) {
        if (text !== '') nodes.push({ kind: 'text', text });
        break;
      }
      let inner = rest.slice(open + 2);
      if (/^-\s/.test(inner)) {
        text = text.replace(/\s+$/, '');
        inner = inner.slice(1);
      }
      if (text !== '') nodes.push({ kind: 'text', text });
      const close = inner.indexOf('}}');
      if (close < 0) throw new Error('unclosed action: {{ without }}');
      let body = inner.slice(0, close);
      if (/\s-$/.test(body)) {
        body = body.slice(0, -1);
        trimNext = true;
      }
      nodes.push({ kind: 'action', pipeline: parseAction(body) });
      rest = inner.slice(close + 2);
    }
    return new AgentPathTemplate(source, nodes);
  }

  /** Runs the template over `data`; throws Error for a missing field or key (missingkey=error). */
  execute(data: TemplateRecord): string {
    const field = (path: readonly string[]): TemplateValue => {
      let v: TemplateValue = data;
      for (const p of path) {
        if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`can't evaluate field ${p} in a ${Array.isArray(v) ? 'list' : typeof v}`);
        const next: TemplateValue | undefined = (v as TemplateRecord)[p];
        if (next === undefined) throw new Error(`map has no entry for key "${p}" (or no such field)`);
        v = next;
      }
      return v;
    };
    const value = (a: Arg): TemplateValue => (a.kind === 'lit' ? a.value : field(a.path));
    let out = '';
    for (const n of this.#nodes) {
      if (n.kind === 'text') {
        out += n.text;
        continue;
      }
      let piped: TemplateValue | undefined;
      for (const c of n.pipeline) {
        const args = c.args.map(value);
        if (piped !== undefined) args.push(piped);
        piped = c.fn === undefined ? (args[0] as TemplateValue) : (FUNCS[c.fn] as { fn: Fn }).fn(args);
      }
      out += str(piped as TemplateValue);
    }
    return out;
  }
}

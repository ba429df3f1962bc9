/**
 * @module config/hcl
 *
 * A small, bounded parser for the subset of HCL that SPIRE's `server.conf` and `agent.conf`
 * use: blocks with optional string labels (`DataStore "sql" { ... }`), `key = value`
 * attributes, strings, numbers, booleans, lists, nested objects (`key = { ... }`), and
 * `#`, `//` and block comments. No interpolation, heredocs or functions: a config file
 * holding them is refused with the line and column, never half-read.
 *
 * Threat: a hostile or corrupted config file exhausting memory or the stack. Input size,
 * nesting depth and item count are bounded.
 *
 * The result is a plain object tree: labelled blocks nest by label
 * (`DataStore "sql" { a = 1 }` → `{ DataStore: { sql: { a: 1 } } }`), so HCL and JSON configs
 * reach the same shape. A key given twice is an error (blocks with different labels merge).
 */
import { MayflyError } from '../spiffe/errors.js';

export type HclValue = string | number | boolean | HclValue[] | HclObject;
export interface HclObject {
  [key: string]: HclValue;
}

export const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_DEPTH = 32;
const MAX_ITEMS = 20_000;

export class ConfigError extends MayflyError {
  constructor(message: string) {
    super('ERR_CONFIG_INVALID', message);
  }
}

type Tok =
  | { t: 'ident'; v: string; line: number; col: number }
  | { t: 'string'; v: string; line: number; col: number }
  | { t: 'number'; v: number; line: number; col: number }
  | { t: 'punct'; v: '{' | '}' | '[' | ']' | '=' | ',' | ':'; line: number; col: number }
  | { t: 'eof'; line: number; col: number };

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (msg: string): never => {
    throw new ConfigError(`config line ${line}, column ${i - lineStart + 1}: ${msg}`);
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (c === '\n') {
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#' || (c === '/' && src[i + 1] === '/')) {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) fail('unterminated /* comment');
      for (let k = i; k < end; k++) {
        if (src[k] === '\n') {
          line++;
          lineStart = k + 1;
        }
      }
      i = end + 2;
      continue;
    }
    const col = i - lineStart + 1;
    if (toks.length >= MAX_ITEMS * 4) fail('config file has too many tokens');
    if ('{}[]=,:'.includes(c)) {
      toks.push({ t: 'punct', v: c as '{', line, col });
      i++;
      continue;
    }
    if (c === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= src.length || src[i] === '\n') fail('unterminated string');
        const d = src[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '$' && src[i + 1] === '{') fail('interpolation ("${...}") is not supported; write the value itself');
        if (d === '\\') {
          const e = src[i + 1];
          const simple: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', '/': '/' };
          if (e !== undefined && simple[e] !== undefined) {
            out += simple[e];
            i += 2;
            continue;
          }
          if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(src.slice(i + 2, i + 6))) {
            out += String.fromCharCode(parseInt(src.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          fail(`unknown escape \\${e ?? ''} in string`);
        }
        out += d;
        i++;
      }
      toks.push({ t: 'string', v: out, line, col });
      continue;
    }
    const num = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(src.slice(i, i + 64));
    if (num && (c === '-' || /\d/.test(c))) {
      toks.push({ t: 'number', v: Number(num[0]), line, col });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(src.slice(i, i + 256));
    if (id) {
      toks.push({ t: 'ident', v: id[0], line, col });
      i += id[0].length;
      continue;
    }
    if (c === '<' && src[i + 1] === '<') fail('heredocs are not supported; use a quoted string');
    fail(`unexpected character ${JSON.stringify(c)}`);
  }
  toks.push({ t: 'eof', line, col: i - lineStart + 1 });
  return toks;
}

/** Whether `v` is an object (a block or `{ ... }`), not a list or a scalar. */
export function isHclObject(v: HclValue | undefined): v is HclObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The line each block of parsed HCL text opened on (`key "label" {`), for problems found after parsing. */
const BLOCK_LINES = new WeakMap<HclObject, number>();

/** The config line a block of parsed HCL text opened on; undefined for JSON or hand-built trees. */
export function hclLineOf(v: HclValue | undefined): number | undefined {
  return isHclObject(v) ? BLOCK_LINES.get(v) : undefined;
}

class Parser {
  #pos = 0;
  #items = 0;
  constructor(readonly toks: Tok[]) {}

  peek(): Tok {
    return this.toks[this.#pos] as Tok;
  }

  next(): Tok {
    return this.toks[this.#pos++] as Tok;
  }

  fail(tok: Tok, msg: string): never {
    throw new ConfigError(`config line ${tok.line}, column ${tok.col}: ${msg}`);
  }

  isPunct(tok: Tok, v: string): boolean {
    return tok.t === 'punct' && tok.v === v;
  }

  /** Items until `}` (or end of input at the top level). */
  body(depth: number, top: boolean, where: string): HclObject {
    if (depth > MAX_DEPTH) this.fail(this.peek(), 'blocks are nested too deeply');
    const out: HclObject = {};
    for (;;) {
      const tok = this.peek();
      if (tok.t === 'eof') {
        if (!top) this.fail(tok, `missing '}' to close ${where || 'a block'}`);
        return out;
      }
      if (this.isPunct(tok, '}')) {
        if (top) this.fail(tok, "unexpected '}'");
        this.next();
        return out;
      }
      if (this.isPunct(tok, ',')) {
        this.next();
        continue;
      }
      if (++this.#items > MAX_ITEMS) this.fail(tok, 'config file has too many items');
      const keyTok = this.next();
      if (keyTok.t !== 'ident' && keyTok.t !== 'string') this.fail(keyTok, `expected a key, found ${describe(keyTok)}`);
      const key = keyTok.v as string;
      const path = where ? `${where}.${key}` : key;
      const labels: string[] = [];
      while (this.peek().t === 'string') labels.push((this.next() as { v: string }).v);
      const after = this.next();
      if ((this.isPunct(after, '=') || this.isPunct(after, ':')) && labels.length === 0) {
        const v = this.value(depth + 1, path);
        if (Object.hasOwn(out, key)) this.fail(keyTok, `${path} is set twice`);
        out[key] = v;
        continue;
      }
      if (!this.isPunct(after, '{')) this.fail(after, `expected '=' or '{' after ${path}, found ${describe(after)}`);
      const block = this.body(depth + 1, false, [path, ...labels.map((l) => JSON.stringify(l))].join(' '));
      BLOCK_LINES.set(block, keyTok.line);
      // Nest by labels: DataStore "sql" {...} → DataStore.sql = {...}
      let target = out;
      let name = key;
      for (const label of labels) {
        const existing = target[name];
        if (existing === undefined) target[name] = {};
        else if (!isHclObject(existing)) this.fail(keyTok, `${path} is set twice`);
        target = target[name] as HclObject;
        name = label;
      }
      if (Object.hasOwn(target, name)) this.fail(keyTok, `${[path, ...labels.map((l) => JSON.stringify(l))].join(' ')} is set twice`);
      target[name] = block;
    }
  }

  value(depth: number, where: string): HclValue {
    if (depth > MAX_DEPTH) this.fail(this.peek(), 'values are nested too deeply');
    const tok = this.next();
    if (tok.t === 'string' || tok.t === 'number') return tok.v;
    if (tok.t === 'ident') {
      if (tok.v === 'true') return true;
      if (tok.v === 'false') return false;
      this.fail(tok, `${where}: expected a value, found the bare word ${JSON.stringify(tok.v)} (quote strings)`);
    }
    if (this.isPunct(tok, '{')) return this.body(depth + 1, false, where);
    if (this.isPunct(tok, '[')) {
      const list: HclValue[] = [];
      for (;;) {
        const p = this.peek();
        if (this.isPunct(p, ']')) {
          this.next();
          return list;
        }
        if (++this.#items > MAX_ITEMS) this.fail(p, 'config file has too many items');
        list.push(this.value(depth + 1, `${where}[${list.length}]`));
        const sep = this.next();
        if (this.isPunct(sep, ']')) return list;
        if (!this.isPunct(sep, ',')) this.fail(sep, `${where}: expected ',' or ']' in a list, found ${describe(sep)}`);
      }
    }
    this.fail(tok, `${where}: expected a value, found ${describe(tok)}`);
  }
}

function describe(tok: Tok): string {
  if (tok.t === 'eof') return 'the end of the file';
  if (tok.t === 'punct') return `'${tok.v}'`;
  return JSON.stringify(tok.v);
}

/** Parses HCL-subset text into a plain object tree. Throws ConfigError naming line and column. */
export function parseHcl(text: string): HclObject {
  if (typeof text !== 'string') throw new TypeError('parseHcl needs a string');
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new ConfigError(`config file is larger than ${MAX_CONFIG_BYTES} bytes`);
  return new Parser(tokenize(text)).body(0, true, '');
}

/** Parses a config file's text: JSON when it starts with '{', HCL otherwise. */
export function parseConfigText(text: string): HclObject {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new ConfigError(`config file is larger than ${MAX_CONFIG_BYTES} bytes`);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`config file is not valid JSON: ${(err as Error).message}`);
    }
    if (!isHclObject(v as HclValue)) throw new ConfigError('config file must hold a JSON object');
    return v as HclObject;
  }
  return parseHcl(text);
}

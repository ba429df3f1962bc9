/**
 * @module test/architecture/graph
 *
 * The import graph of the repository's TypeScript, read statically with the TypeScript
 * compiler's parser (no type-checking, no module loading): every `import`, `import type`,
 * `export ... from`, `import()`, `typeof import()` type and `declare module '...'`
 * augmentation whose specifier is relative, resolved to the repository file it names.
 * Package imports (`node:fs`, `@grpc/grpc-js`) are not edges of this graph.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface ImportEdge {
  /** Repository-relative path of the imported file, `/`-separated (`src/spiffe/id.ts`). */
  readonly to: string;
  /** The specifier as written (`../spiffe/id.js`). */
  readonly specifier: string;
  /** 1-based line of the import. */
  readonly line: number;
  /** True when erased at run time (`import type`, `export type`, type-only positions). */
  readonly typeOnly: boolean;
}

/** File (repository-relative) → the relative imports it makes. */
export type ModuleGraph = ReadonlyMap<string, readonly ImportEdge[]>;

/** The repository root (two levels above this file). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const SKIP_DIRS = new Set(['node_modules', 'dist', 'target', 'bin', 'build', '.git', '.venv', '__pycache__']);

/** Every `.ts` file under `dirs` (repository-relative), skipping build output and dependencies. */
export function listTsFiles(root: string, dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      if (statSync(p).isDirectory()) {
        if (!SKIP_DIRS.has(name)) walk(p);
      } else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) {
        out.push(relative(root, p).split(sep).join('/'));
      }
    }
  };
  for (const d of dirs) if (existsSync(join(root, d))) walk(join(root, d));
  return out;
}

/** The relative module specifiers `text` refers to, with line and type-only flag. */
export function importsOf(fileName: string, text: string): Array<{ specifier: string; line: number; typeOnly: boolean }> {
  return allImportsOf(fileName, text).filter((f) => f.specifier.startsWith('.'));
}

/** Every module specifier `text` refers to (relative ones, packages, `node:` builtins). */
export function allImportsOf(fileName: string, text: string): Array<{ specifier: string; line: number; typeOnly: boolean }> {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: Array<{ specifier: string; line: number; typeOnly: boolean }> = [];
  const add = (lit: ts.Node | undefined, typeOnly: boolean): void => {
    if (lit === undefined || !ts.isStringLiteralLike(lit)) return;
    found.push({ specifier: lit.text, line: sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      // `import type {..}`, or `import { type a, type b }` with every name type-only.
      const named = c?.namedBindings !== undefined && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const allTypeNames = c !== undefined && c.name === undefined && named !== undefined && named.length > 0 && named.every((e) => e.isTypeOnly);
      add(node.moduleSpecifier, c?.isTypeOnly === true || allTypeNames);
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true);
    } else if (ts.isModuleDeclaration(node) && ts.isStringLiteral(node.name)) {
      add(node.name, true); // `declare module '../spiffe/errors.js' { ... }`: an augmentation
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Resolves a relative specifier from `from` (repository-relative) as NodeNext does for our sources. */
export function resolveSpecifier(root: string, from: string, specifier: string): string | undefined {
  const abs = resolve(root, dirname(from), specifier);
  const candidates = [abs.replace(/\.js$/, '.ts'), abs.replace(/\.js$/, '.d.ts'), abs, join(abs, 'index.ts')];
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isFile()) return relative(root, c).split(sep).join('/');
  }
  return undefined;
}

/** The import graph of every `.ts` file under `dirs`. Unresolvable imports are kept with `to: '?<specifier>'`. */
export function readModuleGraph(root: string = REPO_ROOT, dirs: readonly string[] = ['src', 'bench', 'test']): ModuleGraph {
  const graph = new Map<string, ImportEdge[]>();
  for (const file of listTsFiles(root, dirs)) {
    const edges = importsOf(file, readFileSync(join(root, file), 'utf8')).map((i) => ({
      ...i,
      to: resolveSpecifier(root, file, i.specifier) ?? `?${i.specifier}`,
    }));
    graph.set(file, edges);
  }
  return graph;
}

/** The npm package a bare specifier names (`@grpc/grpc-js/build/x` → `@grpc/grpc-js`), or undefined for relative and `node:` ones. */
export function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** File → the npm packages it imports (with type-only flag), for every `.ts` file under `dirs`. */
export function readPackageImports(root: string = REPO_ROOT, dirs: readonly string[] = ['src', 'bench', 'test']): Map<string, Array<{ pkg: string; line: number; typeOnly: boolean }>> {
  const out = new Map<string, Array<{ pkg: string; line: number; typeOnly: boolean }>>();
  for (const file of listTsFiles(root, dirs)) {
    const pkgs = allImportsOf(file, readFileSync(join(root, file), 'utf8')).flatMap((i) => {
      const pkg = packageOf(i.specifier);
      return pkg === undefined ? [] : [{ pkg, line: i.line, typeOnly: i.typeOnly }];
    });
    out.set(file, pkgs);
  }
  return out;
}

/**
 * @module cli/helper-files
 *
 * The files `mayfly-agent helper` keeps in `cert_dir`: the X509-SVID (leaf, then its
 * intermediates unless `add_intermediates_to_bundle`), its key, the bundle (own trust
 * domain, plus federated ones with `include_federated_domains`), CRLs when the agent sends
 * any, the JWT bundles and one file per configured JWT-SVID.
 *
 * Threats:
 * - a reader (nginx on SIGHUP) seeing a half-written certificate or key, or a failed write
 *   (disk full) destroying the good file: every file goes through the `FileWriter` seam,
 *   whose default is securefs `writeFileAtomic` (exclusive temp file in the same directory,
 *   fsync, rename, fsync the directory): the old file stays whole until the new one is.
 *   A failure stops the pass before the reload, so a process is never told to reload
 *   into a mixed set it would reject; the next update writes the set again;
 * - the key readable by others: it is written 0600 unless the operator says otherwise;
 * - a cert_dir another user can change (plants names, swaps files): refused by securefs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BundleSet } from '../spiffe/bundle/index.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { checkOutputDir, writeFileAtomic } from '../securefs/index.js';
import { x509SvidPem, type JwtSvid, type X509Context, type X509Svid } from '../sdk/model.js';
import { CliCallError } from './cli-error.js';
import type { FileMode, HelperConfig } from './helper-config.js';

/** Writes `data` to `path` so that readers see the old content or the new, never a mix. */
export type FileWriter = (path: string, data: string, mode: FileMode) => void;

export const atomicFileWriter: FileWriter = (path, data, mode) => writeFileAtomic(path, data, { mode });

/** What one pass writes from. */
export interface HelperState {
  x509?: X509Context;
  /** The SVID chosen (by `hint`, else the first). */
  svid?: X509Svid;
  jwtBundles?: BundleSet;
  /** By file name. */
  jwtSvids: ReadonlyMap<string, JwtSvid>;
}

/** The SVID `hint` picks (the first without one); undefined when no SVID carries that hint. */
export function pickSvid(ctx: X509Context, hint: string | undefined): X509Svid | undefined {
  if (hint === undefined) return ctx.svids[0];
  return ctx.svids.find((s) => s.hint === hint);
}

function crlPem(ders: readonly Buffer[]): string {
  return ders.map((d) => `-----BEGIN X509 CRL-----\n${(d.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END X509 CRL-----\n`).join('');
}

/** The JWT bundle file, as spiffe-helper writes it: `{ "<trust domain>": "<base64 of its JWKS>" }`. */
export function jwtBundleJson(set: BundleSet): string {
  const out: Record<string, string> = {};
  for (const b of set) out[b.trustDomain.name] = b.jwksForWorkloadApi().toString('base64');
  return JSON.stringify(out);
}

/** Everything the state can fill, as [file name, content, mode] in write order (bundle and key before the certificate). */
export function helperFiles(cfg: HelperConfig, state: HelperState): [string, string, FileMode][] {
  const files: [string, string, FileMode][] = [];
  const { x509, svid } = state;
  if (x509 && svid) {
    const pem = x509SvidPem(svid);
    if (cfg.svidBundleFileName) {
      const roots: Buffer[] = [];
      const own = x509.bundles.get(svid.id.trustDomain);
      if (own) roots.push(...own.x509Authorities);
      if (cfg.includeFederatedDomains) for (const b of x509.bundles) if (!b.trustDomain.equals(svid.id.trustDomain)) roots.push(...b.x509Authorities);
      if (cfg.addIntermediatesToBundle) roots.push(...svid.certificates.slice(1));
      files.push([cfg.svidBundleFileName, pemEncodeCertificates(roots), cfg.certFileMode]);
    }
    if (cfg.svidKeyFileName && cfg.svidFileName) {
      files.push([cfg.svidKeyFileName, pem.privateKey, cfg.keyFileMode]);
      const certs = cfg.addIntermediatesToBundle ? svid.certificates.slice(0, 1) : svid.certificates;
      files.push([cfg.svidFileName, pemEncodeCertificates(certs), cfg.certFileMode]);
    }
    if (cfg.crlFileName && x509.crl.length > 0) files.push([cfg.crlFileName, crlPem(x509.crl), cfg.certFileMode]);
  }
  if (cfg.jwtBundleFileName && state.jwtBundles) files.push([cfg.jwtBundleFileName, jwtBundleJson(state.jwtBundles), cfg.jwtBundleFileMode]);
  for (const j of cfg.jwtSvids) {
    const t = state.jwtSvids.get(j.fileName);
    if (t) files.push([j.fileName, t.token, cfg.jwtSvidFileMode]);
  }
  return files;
}

/** True when the state holds everything the config asks for (one-shot mode waits for this). */
export function stateComplete(cfg: HelperConfig, state: HelperState): boolean {
  if ((cfg.svidFileName || cfg.svidBundleFileName) && !state.svid) return false;
  if (cfg.jwtBundleFileName && !state.jwtBundles) return false;
  return cfg.jwtSvids.every((j) => state.jwtSvids.has(j.fileName));
}

/**
 * Writes the state's files into `cfg.certDir` through `writer`, stopping at the first
 * failure (which it throws, naming the file). The files this pass already replaced are
 * then put back to what `previous` (the last complete pass, by file name) holds, so a
 * failure between the key and the certificate does not leave a new key beside the old
 * certificate. Files whose content equals `previous` (and that exist) are not rewritten.
 * On success `previous` is updated. Returns the paths written (none: nothing changed).
 */
export function writeHelperFiles(cfg: HelperConfig, state: HelperState, writer: FileWriter = atomicFileWriter, previous: Map<string, string> = new Map()): string[] {
  try {
    checkOutputDir(cfg.certDir);
  } catch (err) {
    throw new CliCallError('ERR_CLI_FAILED', `cert_dir ${cfg.certDir} cannot be written into: ${(err as Error).message}`, { cause: err });
  }
  const files = helperFiles(cfg, state);
  const done: [string, FileMode][] = [];
  for (const [name, data, mode] of files) {
    const path = join(cfg.certDir, name);
    if (previous.get(name) === data && existsSync(path)) continue; // unchanged: leave the file (and its mtime) alone
    try {
      writer(path, data, mode);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const restored: string[] = [];
      const lost: string[] = [];
      for (const [n, m] of done) {
        const old = previous.get(n);
        if (old === undefined) continue;
        try {
          writer(join(cfg.certDir, n), old, m);
          restored.push(n);
        } catch {
          lost.push(n);
        }
      }
      const back = restored.length > 0 ? `; ${restored.join(', ')} put back to the previous set` : '';
      const mixed = lost.length > 0 ? `; ${lost.join(', ')} could not be put back and are newer than the rest` : '';
      throw new CliCallError('ERR_CLI_FAILED', `cannot write ${path}: ${why}; the previous file (if any) is left as it was${back}${mixed}`, { cause: err });
    }
    done.push([name, mode]);
  }
  for (const [name, data] of files) previous.set(name, data);
  return done.map(([name]) => join(cfg.certDir, name));
}

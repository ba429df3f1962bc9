/**
 * @module ca/testing
 *
 * Test helpers for the CA: a settable clock, a logger that records what it was told, and an
 * operator-style upstream CA written to files. Not imported by production code.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrustDomain } from '../spiffe/id.js';
import { exportPkcs8Pem, generateKeyPair, type KeyPair } from '../spiffe/keys.js';
import { createCaCertificate, pemEncodeCertificates } from '../spiffe/x509/index.js';
import type { CaLogger } from './authority.js';

export class TestClock {
  ms: number;
  constructor(start: Date | string = '2026-03-01T00:00:00Z') {
    this.ms = new Date(start).getTime();
  }
  readonly now = (): Date => new Date(this.ms);
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export class RecordingLogger implements CaLogger {
  readonly lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  info(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', message, fields });
  }
  warn(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', message, fields });
  }
  error(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'error', message, fields });
  }
}

export interface OperatorCa {
  root: Buffer;
  rootKey: KeyPair;
  /** present when `withIntermediate` */
  intermediate?: Buffer;
  intermediateKey?: KeyPair;
  certFile: string;
  keyFile: string;
  bundleFile: string;
}

/**
 * An operator PKI on disk: a root (10 days) and, optionally, an intermediate under it that
 * becomes Mayfly's upstream. certFile holds the upstream cert (intermediate or root),
 * bundleFile the root, keyFile the upstream key (0600).
 */
export function writeOperatorCa(dir: string, opts: { now: Date; trustDomain?: string; withIntermediate?: boolean }): OperatorCa {
  mkdirSync(dir, { recursive: true });
  const td = TrustDomain.parse(opts.trustDomain ?? 'example.org');
  const rootKey = generateKeyPair('ec-p384');
  const root = createCaCertificate({ trustDomain: td, key: rootKey, ttlSeconds: 10 * 86400, now: opts.now, subject: { commonName: 'Operator Root', organization: 'Example' } });
  let upstreamCert = root;
  let upstreamKey = rootKey;
  const out: OperatorCa = { root, rootKey, certFile: join(dir, 'upstream.crt'), keyFile: join(dir, 'upstream.key'), bundleFile: join(dir, 'root.crt') };
  if (opts.withIntermediate) {
    const intermediateKey = generateKeyPair('ec-p256');
    const intermediate = createCaCertificate({
      trustDomain: td, key: intermediateKey, ttlSeconds: 9 * 86400, now: opts.now,
      upstream: { certificate: root, privateKey: rootKey.privateKey }, subject: { commonName: 'Operator Intermediate', organization: 'Example' },
    });
    upstreamCert = intermediate;
    upstreamKey = intermediateKey;
    out.intermediate = intermediate;
    out.intermediateKey = intermediateKey;
  }
  writeFileSync(out.certFile, pemEncodeCertificates([upstreamCert]));
  writeFileSync(out.keyFile, exportPkcs8Pem(upstreamKey.privateKey), { mode: 0o600 });
  writeFileSync(out.bundleFile, pemEncodeCertificates([root]));
  return out;
}

/**
 * @module attestors/node/x509pop/agent
 *
 * The agent side of `x509pop`: sends the node's certificate chain (certificate_path, then
 * intermediates_path) and answers the server's challenge with the node key
 * (private_key_path). The files are read afresh for every attestation, as SPIRE's plugin
 * does, so a node certificate renewed on disk is used from the next attestation on. The
 * key must belong to the leaf: a mismatch is reported here rather than as a refusal from
 * the server. The key never leaves this process: only signatures over the server's nonce do.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MayflyError } from '../../../spiffe/errors.js';
import { parseCertificate } from '../../../spiffe/x509/parse.js';
import { parsePemCertificates } from '../../../spiffe/x509/pem.js';
import type { X509PopAgentConfig } from './config.js';
import { calculateResponse, decodeChallenge, encodeAttestationData, encodeResponse, keyKindOf, X509POP_TYPE } from './pop.js';

function failed(why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_FAILED', `x509pop: ${why}`, cause === undefined ? undefined : { cause });
}

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw failed(`unable to load ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
}

function certificatesIn(path: string, what: string): Buffer[] {
  let certs: Buffer[];
  try {
    certs = parsePemCertificates(read(path, what));
  } catch (err) {
    if (err instanceof MayflyError && err.code === 'ERR_ATTESTATION_FAILED') throw err;
    throw failed(`${what} ${path} does not hold PEM certificates: ${(err as Error).message}`, err);
  }
  if (certs.length === 0) throw failed(`${what} ${path} holds no PEM certificate`);
  return certs;
}

export class X509PopAgentAttestor {
  readonly canReattest = true;
  readonly #cfg: X509PopAgentConfig;
  /** The key of the evidence last sent: the challenge that follows is answered with it. */
  #key: KeyObject | undefined;

  constructor(cfg: X509PopAgentConfig) {
    if (typeof cfg?.privateKeyPath !== 'string' || cfg.privateKeyPath === '' || typeof cfg.certificatePath !== 'string' || cfg.certificatePath === '') {
      throw new TypeError('X509PopAgentAttestor needs { privateKeyPath, certificatePath }');
    }
    this.#cfg = cfg;
  }

  /** The chain for one attestation; throws ERR_ATTESTATION_FAILED when the files are missing or do not match. */
  async attestationData(): Promise<{ readonly type: string; readonly payload: Buffer }> {
    const certs = certificatesIn(this.#cfg.certificatePath, 'certificate');
    let key: KeyObject;
    try {
      key = createPrivateKey(read(this.#cfg.privateKeyPath, 'private key'));
    } catch (err) {
      if (err instanceof MayflyError) throw err;
      throw failed(`the private key ${this.#cfg.privateKeyPath} cannot be read: ${(err as Error).message}`, err);
    }
    if (keyKindOf(key) === undefined) throw failed(`the private key ${this.#cfg.privateKeyPath} is ${key.asymmetricKeyType ?? 'unknown'}; x509pop needs RSA or ECDSA`);
    let leafSpki: Buffer;
    try {
      leafSpki = parseCertificate(certs[0] as Buffer).spki;
    } catch (err) {
      throw failed(`the certificate in ${this.#cfg.certificatePath} cannot be parsed: ${(err as Error).message}`, err);
    }
    const mine = createPublicKey(key).export({ format: 'der', type: 'spki' });
    if (!mine.equals(leafSpki)) throw failed(`the private key ${this.#cfg.privateKeyPath} does not belong to the certificate ${this.#cfg.certificatePath}`);
    if (this.#cfg.intermediatesPath !== undefined) certs.push(...certificatesIn(this.#cfg.intermediatesPath, 'intermediates'));
    this.#key = key;
    return { type: X509POP_TYPE, payload: encodeAttestationData(certs) };
  }

  /** The answer to the server's challenge, signed with the key of the evidence last sent. */
  async answerChallenge(challenge: Uint8Array): Promise<Buffer> {
    const key = this.#key;
    if (key === undefined) throw new TypeError('answerChallenge before attestationData');
    try {
      return encodeResponse(calculateResponse(key, decodeChallenge(challenge)));
    } catch (err) {
      if (err instanceof MayflyError) throw failed(`failed to calculate challenge response: ${err.message.replace(/^x509pop: /, '')}`, err);
      throw err;
    }
  }
}

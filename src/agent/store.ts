/**
 * @module agent/store
 *
 * The agent's state on disk: its X509-SVID (`agent-svid.pem`, leaf then intermediates),
 * the SVID's private key (`agent-key.pem`, PKCS#8) and the last trust bundle it learned
 * (`bundle.pem`), so a restarted agent resumes without a new join token.
 *
 * Threats (the checks themselves live in src/securefs):
 * - another local user reading the agent key and impersonating the node to the server:
 *   the data directory is created 0700 and the files 0600; a directory or key file found
 *   with group/other bits or another owner is refused, not silently used;
 * - a crash half way through a renewal leaving a truncated file: every file is written to
 *   an exclusive, no-follow temporary file, fsynced, renamed over the target, and the
 *   directory fsynced; a key that does not match the stored SVID (crash between the two
 *   renames) is reported as "no usable SVID", never used;
 * - a symlink planted at a file's path to redirect a read or a write: reads open with
 *   O_NOFOLLOW, and a write refuses a target that is a symlink or not a regular file.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { exportPkcs8Pem, importPkcs8 } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { parsePemCertificates, pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { MayflyError } from '../spiffe/errors.js';
import { ensurePrivateDir, readPrivateFile, readRegularFile, writeFileAtomic } from '../securefs/index.js';

export const AGENT_SVID_FILE = 'agent-svid.pem';
export const AGENT_KEY_FILE = 'agent-key.pem';
export const BUNDLE_FILE = 'bundle.pem';

export interface StoredAgentSvid {
  /** DER, leaf first. */
  readonly certChain: readonly Buffer[];
  readonly privateKey: KeyObject;
}

function stateError(message: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_AGENT_STATE_INVALID', message, cause === undefined ? undefined : { cause });
}

/** Reads and writes the agent's files in one data directory. Synchronous: the files are tiny. */
export class AgentStateStore {
  readonly dataDir: string;

  constructor(cfg: { dataDir: string }) {
    if (typeof cfg.dataDir !== 'string' || cfg.dataDir === '') throw new TypeError('dataDir must be a non-empty path');
    this.dataDir = cfg.dataDir;
  }

  /** Creates the directory 0700 if missing; refuses one that is a symlink, another user's, or readable by others. */
  ensureDir(): void {
    ensurePrivateDir(this.dataDir, { loose: 'refuse', allowSymlink: false });
  }

  #read(name: string, secret: boolean): string | undefined {
    const path = join(this.dataDir, name);
    return (secret ? readPrivateFile(path) : readRegularFile(path))?.toString('utf8');
  }

  #write(name: string, text: string): void {
    this.ensureDir();
    writeFileAtomic(join(this.dataDir, name), text, { mode: 0o600 });
  }

  /** The stored agent SVID and key, or undefined when absent or unusable (reason in `problem`). */
  loadAgentSvid(): { svid?: StoredAgentSvid; problem?: string } {
    const certText = this.#read(AGENT_SVID_FILE, false);
    const keyText = this.#read(AGENT_KEY_FILE, true);
    if (certText === undefined && keyText === undefined) return {};
    if (certText === undefined || keyText === undefined) {
      return { problem: `only one of ${AGENT_SVID_FILE} and ${AGENT_KEY_FILE} exists in ${this.dataDir}` };
    }
    let certChain: Buffer[];
    let privateKey: KeyObject;
    let leafKey: KeyObject;
    try {
      certChain = parsePemCertificates(certText);
      privateKey = importPkcs8(keyText).privateKey;
      const leaf = certChain[0];
      if (leaf === undefined) throw new Error(`${AGENT_SVID_FILE} holds no certificate`);
      leafKey = createPublicKey({ key: parseCertificate(leaf).spki, format: 'der', type: 'spki' });
    } catch (err) {
      return { problem: `stored agent SVID or key cannot be read: ${(err as Error).message}` };
    }
    if (!leafKey.equals(createPublicKey(privateKey))) {
      return { problem: `${AGENT_KEY_FILE} does not match ${AGENT_SVID_FILE} (an interrupted renewal?)` };
    }
    return { svid: { certChain, privateKey } };
  }

  /** Stores a new agent SVID: the key first, then the certificates, each atomically. */
  saveAgentSvid(svid: StoredAgentSvid): void {
    this.#write(AGENT_KEY_FILE, exportPkcs8Pem(svid.privateKey));
    this.#write(AGENT_SVID_FILE, pemEncodeCertificates(svid.certChain));
  }

  /** The trust domain's X.509 roots (DER) stored in bundle.pem, if any: certificates only, not a `Bundle`. */
  loadTrustRoots(): Buffer[] | undefined {
    const text = this.#read(BUNDLE_FILE, false);
    if (text === undefined) return undefined;
    try {
      return parsePemCertificates(text);
    } catch (err) {
      throw stateError(`${join(this.dataDir, BUNDLE_FILE)} cannot be read: ${(err as Error).message}; delete it and bootstrap again`, err);
    }
  }

  /** Stores the trust domain's X.509 roots in bundle.pem. */
  saveTrustRoots(roots: readonly Buffer[]): void {
    this.#write(BUNDLE_FILE, pemEncodeCertificates(roots));
  }
}

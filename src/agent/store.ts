/**
 * @module agent/store
 *
 * The agent's state on disk: its X509-SVID (`agent-svid.pem`, leaf then intermediates),
 * the SVID's private key (`agent-key.pem`, PKCS#8) and the last trust bundle it learned
 * (`bundle.pem`), so a restarted agent resumes without a new join token.
 *
 * Threats:
 * - another local user reading the agent key and impersonating the node to the server:
 *   the data directory is created 0700 and the files 0600; a directory or key file found
 *   with group/other bits or another owner is refused, not silently used;
 * - a crash half way through a renewal leaving a truncated file: every file is written to
 *   a temporary name, fsynced, renamed over the target, and the directory fsynced; a key
 *   that does not match the stored SVID (crash between the two renames) is reported as
 *   "no usable SVID", never used;
 * - a symlink planted at a file's path to redirect the write: paths are checked with
 *   lstat and symlinks refused.
 */
import { randomBytes, createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, constants, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { MayflyError } from '../spiffe/errors.js';
import { exportPkcs8Pem, importPkcs8 } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { parsePemCertificates, pemEncodeCertificates } from '../spiffe/x509/pem.js';

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

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function checkPrivate(path: string, st: Stats, what: string, mode: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw stateError(`${what} ${path} is owned by uid ${st.uid}, not by the agent's uid ${uid}; chown it to the user running the agent`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw stateError(`${what} ${path} has mode ${(st.mode & 0o777).toString(8)}, which lets other users read it; run "chmod ${mode} ${path}"`);
  }
}

/** Reads and writes the agent's files in one data directory. Synchronous: the files are tiny. */
export class AgentStateStore {
  readonly dataDir: string;

  constructor(cfg: { dataDir: string }) {
    if (typeof cfg.dataDir !== 'string' || cfg.dataDir === '') throw new TypeError('dataDir must be a non-empty path');
    this.dataDir = cfg.dataDir;
  }

  /** Creates the directory 0700 if missing; refuses one that others can read. */
  ensureDir(): void {
    const st = lstatOrUndefined(this.dataDir);
    if (st === undefined) {
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
      chmodSync(this.dataDir, 0o700);
      return;
    }
    if (!st.isDirectory()) throw stateError(`agent data directory ${this.dataDir} is not a directory`);
    checkPrivate(this.dataDir, st, 'agent data directory', '700');
  }

  #read(name: string, secret: boolean): string | undefined {
    const path = join(this.dataDir, name);
    const st = lstatOrUndefined(path);
    if (st === undefined) return undefined;
    if (!st.isFile()) throw stateError(`${path} is not a regular file (symlinks are refused)`);
    if (secret) checkPrivate(path, st, 'agent key file', '600');
    return readFileSync(path, 'utf8');
  }

  #write(name: string, text: string): void {
    this.ensureDir();
    const path = join(this.dataDir, name);
    const st = lstatOrUndefined(path);
    if (st !== undefined && !st.isFile()) throw stateError(`${path} is not a regular file (symlinks are refused)`);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // writeSync may write less than asked (signals, odd filesystems): loop until done.
      const data = Buffer.from(text, 'utf8');
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, path);
    const dfd = openSync(dirname(path), constants.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
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

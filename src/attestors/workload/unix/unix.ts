/**
 * @module attestors/workload/unix
 *
 * The `unix` workload attestor: selectors from what the kernel says about a process.
 *
 * Threat: a workload claiming to be another. Every fact comes from /proc for the pid the
 * kernel reported on the Workload API socket (SO_PEERCRED), never from the request:
 * effective uid/gid and supplementary groups from /proc/<pid>/status, the executable
 * from the /proc/<pid>/exe link, and its hash read *through* that link, so a binary
 * replaced on disk after exec is not what gets hashed. The caller that connected may
 * exit and its pid be reused while we read; the Workload API endpoint re-checks the
 * process start time after attestation (see agent/peercred) and discards the result
 * if the process changed.
 *
 * Exec after connect: the process that connected may `exec` a setuid binary, or another
 * binary of its uid, while a child it forked holds the socket; /proc then describes that
 * binary. So the facts read here must agree with the connect-time record the endpoint
 * passes in: the effective uid/gid must equal what `SO_PEERCRED` recorded, and the file
 * hashed for `unix:sha256` (opened through /proc/<pid>/exe, then fstat'ed) and the file
 * behind the link around the `unix:path` read must be the executable (device and inode)
 * seen at accept. A mismatch is `ERR_CALLER_CHANGED` (PERMISSION_DENIED), not a selector:
 * so `unix:uid` is always the kernel's connect-time uid, and `unix:path`/`unix:sha256`
 * always describe the accept-time binary. The endpoint checks the same facts again after
 * attestation, which catches a change while the attestors ran.
 *
 * Names (`unix:user`, `unix:group`) come from /etc/passwd and /etc/group: users known
 * only to other NSS sources (LDAP, sssd) get uid/gid selectors but no name selectors.
 *
 * Cost: this runs on every Workload API call, so the per-call reads are synchronous:
 * /proc/<pid>/status is generated from kernel memory and the passwd/group checks are one
 * stat each (parsed files are reused while unchanged), microseconds in all, where the
 * thread pool would add several event-loop turns per file. Reading a changed passwd/group
 * file and hashing the executable stay asynchronous (they touch the disk).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { open, readFile, readlink } from 'node:fs/promises';
import { MayflyError } from '../../../spiffe/errors.js';
import { callerPid, type WorkloadAttestor, type WorkloadCaller, type WorkloadSelector } from '../attestor.js';

export interface UnixAttestorConfig {
  /** Also emit `unix:path` and `unix:sha256` (SPIRE's `discover_workload_path`). Default false. */
  discoverWorkloadPath?: boolean;
  /**
   * Largest executable hashed for `unix:sha256`, in bytes (SPIRE's `workload_size_limit`).
   * Default 256 MiB; 0 = no limit; negative = never hash. A larger binary fails attestation,
   * since silently dropping a selector could let a narrower entry match.
   */
  workloadSizeLimit?: number;
  /** Root of the proc filesystem and of /etc (tests point these at fixtures). */
  procRoot?: string;
  etcRoot?: string;
}

const DEFAULT_SIZE_LIMIT = 256 * 1024 * 1024;

interface ProcStatus {
  uid: number;
  gid: number;
  groups: number[];
}

function attestationFailed(pid: number, why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_FAILED', `unix attestor: process ${pid}: ${why}`, { cause });
}

function callerChanged(pid: number, why: string): MayflyError {
  return new MayflyError('ERR_CALLER_CHANGED', `unix attestor: process ${pid}: ${why} since it connected; refusing to attest it`);
}

/** `<dev>:<ino>` of the file behind a path (links followed), as peercred records it. */
function fileIdentity(st: { dev: bigint; ino: bigint }): string {
  return `${st.dev}:${st.ino}`;
}

/** Parses the Uid/Gid/Groups lines of /proc/<pid>/status; uses the *effective* ids, as SPIRE does. */
export function parseProcStatus(text: string): ProcStatus {
  let uid: number | undefined;
  let gid: number | undefined;
  let groups: number[] = [];
  for (const line of text.split('\n')) {
    const tab = line.indexOf(':');
    if (tab < 0) continue;
    const key = line.slice(0, tab);
    const fields = line.slice(tab + 1).trim().split(/\s+/).filter((f) => f !== '');
    if (key === 'Uid') uid = Number(fields[1] ?? fields[0]);
    else if (key === 'Gid') gid = Number(fields[1] ?? fields[0]);
    else if (key === 'Groups') groups = fields.map(Number);
  }
  if (uid === undefined || gid === undefined || !Number.isInteger(uid) || !Number.isInteger(gid) || groups.some((g) => !Number.isInteger(g))) {
    throw new TypeError('status file has no valid Uid/Gid lines');
  }
  return { uid, gid, groups };
}

/** id → name from a passwd or group file (name:x:id:...). First entry wins, like getpwuid. */
export function parseIdNames(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(':');
    const id = Number(parts[2]);
    if (parts[0] && Number.isInteger(id) && !names.has(id)) names.set(id, parts[0]);
  }
  return names;
}

/** A file's identity: device, inode, size, modification and change times in nanoseconds. */
function fileVersion(path: string): string {
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

export class UnixWorkloadAttestor implements WorkloadAttestor {
  readonly name = 'unix';
  readonly #discoverPath: boolean;
  readonly #sizeLimit: number;
  readonly #proc: string;
  readonly #etc: string;
  /** Parsed passwd/group files and the file identity they were parsed from (see #names). */
  readonly #nameCache = new Map<'passwd' | 'group', { version: string; names: Map<number, string> }>();

  constructor(config: UnixAttestorConfig = {}) {
    this.#discoverPath = config.discoverWorkloadPath ?? false;
    this.#sizeLimit = config.workloadSizeLimit ?? DEFAULT_SIZE_LIMIT;
    this.#proc = config.procRoot ?? '/proc';
    this.#etc = config.etcRoot ?? '/etc';
  }

  async attest(caller: WorkloadCaller): Promise<WorkloadSelector[]> {
    const pid = callerPid(caller);
    let status: ProcStatus;
    try {
      status = parseProcStatus(readFileSync(`${this.#proc}/${pid}/status`, 'utf8'));
    } catch (cause) {
      throw attestationFailed(pid, 'cannot read its status (has it exited?)', cause);
    }
    if (status.uid !== caller.uid || status.gid !== caller.gid) {
      throw callerChanged(pid, `it connected as uid ${caller.uid} gid ${caller.gid} and now runs as uid ${status.uid} gid ${status.gid}`);
    }
    const users = this.#cachedNames('passwd') ?? (await this.#names('passwd'));
    const groups = this.#cachedNames('group') ?? (await this.#names('group'));
    const out: WorkloadSelector[] = [];
    const add = (value: string): void => {
      out.push({ type: 'unix', value });
    };
    add(`uid:${status.uid}`);
    const user = users.get(status.uid);
    if (user !== undefined) add(`user:${user}`);
    add(`gid:${status.gid}`);
    const group = groups.get(status.gid);
    if (group !== undefined) add(`group:${group}`);
    for (const g of status.groups) {
      add(`supplementary_gid:${g}`);
      const name = groups.get(g);
      if (name !== undefined) add(`supplementary_group:${name}`);
    }
    if (this.#discoverPath) out.push(...(await this.#pathSelectors(pid, caller.executable)));
    return out;
  }

  /**
   * id → name from /etc/passwd or /etc/group. The parsed file is kept and reused while its
   * identity (device, inode, size, change and modification times in nanoseconds) is
   * unchanged, so each call costs one stat instead of a read and parse; any edit or
   * replacement of the file (rename over it, as vipw and useradd do) is read afresh.
   */
  async #names(file: 'passwd' | 'group'): Promise<Map<number, string>> {
    const path = `${this.#etc}/${file}`;
    try {
      const version = fileVersion(path);
      const cached = this.#nameCache.get(file);
      if (cached !== undefined && cached.version === version) return cached.names;
      const names = parseIdNames(await readFile(path, 'utf8'));
      // Keep it only if the file did not change while it was read.
      if (fileVersion(path) === version) this.#nameCache.set(file, { version, names });
      else this.#nameCache.delete(file);
      return names;
    } catch {
      this.#nameCache.delete(file);
      return new Map();
    }
  }

  /** The parsed file when the one kept is still current (one synchronous stat); else undefined. */
  #cachedNames(file: 'passwd' | 'group'): Map<number, string> | undefined {
    const cached = this.#nameCache.get(file);
    if (cached === undefined) return undefined;
    try {
      if (fileVersion(`${this.#etc}/${file}`) === cached.version) return cached.names;
    } catch {
      // gone or unreadable: #names decides (and forgets the cached parse)
    }
    return undefined;
  }

  async #pathSelectors(pid: number, executable: string | undefined): Promise<WorkloadSelector[]> {
    if (executable === undefined) {
      throw attestationFailed(pid, 'its executable could not be read when it connected (the agent needs permission to read /proc/<pid>/exe)');
    }
    const exeLink = `${this.#proc}/${pid}/exe`;
    const stillSame = (): void => {
      let now: string;
      try {
        now = fileIdentity(statSync(exeLink, { bigint: true }));
      } catch (cause) {
        throw attestationFailed(pid, 'cannot read its executable (has it exited?)', cause);
      }
      if (now !== executable) throw callerChanged(pid, 'it executed another file');
    };
    let path: string;
    stillSame();
    try {
      path = await readlink(exeLink);
    } catch (cause) {
      throw attestationFailed(pid, 'cannot read its executable path (the agent needs permission to read /proc/<pid>/exe)', cause);
    }
    // The same file before and after the read: the path is the accept-time binary's.
    stillSame();
    const out: WorkloadSelector[] = [{ type: 'unix', value: `path:${path}` }];
    if (this.#sizeLimit < 0) return out;
    out.push({ type: 'unix', value: `sha256:${await this.#hash(pid, exeLink, executable)}` });
    return out;
  }

  /**
   * Hashes the executable through the /proc link, refusing to read past the size limit
   * and refusing a file other than the accept-time executable.
   */
  async #hash(pid: number, exeLink: string, executable: string): Promise<string> {
    let fh;
    try {
      fh = await open(exeLink, 'r');
    } catch (cause) {
      throw attestationFailed(pid, 'cannot open its executable to hash it', cause);
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (fileIdentity(st) !== executable) throw callerChanged(pid, 'it executed another file');
      const size = Number(st.size);
      if (this.#sizeLimit > 0 && size > this.#sizeLimit) {
        throw attestationFailed(pid, `executable is ${size} bytes, over the ${this.#sizeLimit}-byte hashing limit (raise workload_size_limit)`);
      }
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(1 << 20);
      let total = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        total += bytesRead;
        // The file may grow while we read it: the limit holds for the bytes actually hashed.
        if (this.#sizeLimit > 0 && total > this.#sizeLimit) {
          throw attestationFailed(pid, `executable grew past the ${this.#sizeLimit}-byte hashing limit while being hashed`);
        }
        hash.update(buf.subarray(0, bytesRead));
      }
      return hash.digest('hex');
    } finally {
      await fh.close();
    }
  }
}

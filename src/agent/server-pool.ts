/**
 * @module agent/server-pool
 *
 * The server addresses an agent may talk to, and the one it talks to now. The operator
 * gives `host:port` targets (agent.conf `server_addresses`, or SPIRE's one `server_address`
 * + `server_port`); a host name stands for every address it resolves to, so one DNS name
 * with an A/AAAA record per server is a list of servers too. SPIRE's agent has one address
 * and leaves failover to DNS or a load balancer; Mayfly's walks the list itself.
 *
 * The pool keeps the current endpoint until a call to it fails for want of a server
 * (agent/failover-client decides what counts), then moves to the next one and logs it. A
 * *round* is a run of consecutive failures that started at some endpoint; it is over when
 * every endpoint failed once. While a round has an untried endpoint left, `hasAlternative()`
 * is true and the entry sync retries at once on it instead of backing off; after a full
 * round the names are resolved again (a DNS answer that moved is picked up) and the sync
 * backs off as it does with one server. Any success ends the round.
 *
 * Transport security does not depend on the address: every server must present
 * `spiffe://<td>/spire/server` chaining to the bundle (agent/grpc-client), so a DNS answer
 * pointing elsewhere can cost availability, never trust.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError } from './server-client.js';

/** Every address `host` resolves to (IPv4 or IPv6 literals), in the resolver's order. */
export type ResolveHost = (host: string) => Promise<string[]>;

/** The system resolver (getaddrinfo, so /etc/hosts and the search domains apply), all answers. */
export const systemResolveHost: ResolveHost = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** `host:port` → its parts; `[v6]:port` for IPv6. TypeError naming the target when it is not one. */
export function splitHostPort(target: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(target);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new TypeError(`server address ${JSON.stringify(target)} is not host:port (a port from 1 to 65535; IPv6 as [addr]:port)`);
  }
  const host = (m[1] ?? m[2]) as string;
  if (m[1] !== undefined && isIP(host) !== 6) throw new TypeError(`server address ${JSON.stringify(target)}: ${host} is not an IPv6 address`);
  return { host, port };
}

/** `host:port`, bracketing an IPv6 address. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface ServerPoolConfig {
  /** `host:port` targets in order of preference (at least one). */
  targets: readonly string[];
  /** How host names become addresses (default: the system resolver; tests inject one). */
  resolve?: ResolveHost;
  logger?: AgentLogger;
}

export class ServerPool {
  readonly targets: readonly string[];
  readonly #resolve: ResolveHost;
  readonly #log: AgentLogger;
  #endpoints: string[] | undefined;
  #resolving: Promise<string[]> | undefined;
  #index = 0;
  /** Endpoints that failed in a row since the round started (0: no round under way). */
  #failedInRound = 0;
  #streamingOn: string | undefined;
  #lastStreamedOn: string | undefined;

  constructor(cfg: ServerPoolConfig) {
    if (typeof cfg !== 'object' || cfg === null || !Array.isArray(cfg.targets) || cfg.targets.length === 0) throw new TypeError('ServerPool needs { targets: ["host:port", …] }');
    for (const t of cfg.targets) splitHostPort(t);
    this.targets = [...cfg.targets];
    this.#resolve = cfg.resolve ?? systemResolveHost;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
  }

  /** The endpoints (`ip:port`) of the last resolution, in order; undefined before the first. */
  get endpoints(): readonly string[] | undefined {
    return this.#endpoints;
  }

  /** The endpoint calls go to now (undefined until the targets were resolved). */
  get address(): string | undefined {
    return this.#endpoints?.[this.#index];
  }

  /** The endpoint the authorised-entry stream is open on, if one is. */
  get streamingOn(): string | undefined {
    return this.#streamingOn;
  }

  /** The endpoint to call now, resolving the targets first when needed; UNAVAILABLE when none resolves. */
  async current(): Promise<string> {
    const endpoints = this.#endpoints ?? (await (this.#resolving ??= this.#resolveAll().finally(() => (this.#resolving = undefined))));
    return endpoints[this.#index % endpoints.length] as string;
  }

  async #resolveAll(): Promise<string[]> {
    const out: string[] = [];
    const problems: string[] = [];
    for (const target of this.targets) {
      const { host, port } = splitHostPort(target);
      let addresses: string[];
      try {
        addresses = isIP(host) !== 0 ? [host] : await this.#resolve(host);
      } catch (err) {
        problems.push(`${host}: ${(err as Error).message}`);
        continue;
      }
      if (addresses.length === 0) problems.push(`${host}: no addresses`);
      for (const a of addresses) {
        const e = joinHostPort(a, port);
        if (!out.includes(e)) out.push(e);
      }
    }
    if (out.length === 0) {
      throw new ServerCallError(GrpcCode.UNAVAILABLE, `no server address could be resolved (${problems.join('; ')}); check server_address / server_addresses and DNS`);
    }
    if (problems.length > 0) this.#log.warn({ problems, endpoints: out }, 'some server addresses could not be resolved; using the others');
    const before = this.#endpoints;
    if (before === undefined || before.join(' ') !== out.join(' ')) this.#log.info({ endpoints: out }, 'server addresses resolved');
    this.#endpoints = out;
    if (this.#index >= out.length) this.#index = 0;
    return out;
  }

  /**
   * A call to `address` failed for want of a server: when it is still the current endpoint,
   * move to the next one (logged). A failure on an endpoint already left is ignored, so
   * calls failing together move the pool once.
   */
  failed(address: string, why: string): void {
    const endpoints = this.#endpoints;
    if (endpoints === undefined || endpoints[this.#index] !== address) return;
    this.#failedInRound++;
    this.#index = (this.#index + 1) % endpoints.length;
    const next = endpoints[this.#index] as string;
    if (this.#failedInRound >= endpoints.length) {
      this.#failedInRound = 0;
      // Resolve again before the next round: a DNS answer that changed is picked up.
      this.#endpoints = undefined;
      if (endpoints.length > 1) this.#log.warn({ server: address, err: why, endpoints }, 'no server answered; trying them all again after a backoff');
    } else {
      this.#log.warn({ server: next, previous: address, err: why }, `server ${address} unreachable; moving to server ${next}`);
    }
  }

  /** A call to `address` succeeded: any round of failures is over. */
  succeeded(address: string): void {
    if (this.#endpoints?.[this.#index] === address) this.#failedInRound = 0;
  }

  /** True while a round of failures has an endpoint left it did not try (retry at once, no backoff). */
  hasAlternative(): boolean {
    return this.#failedInRound > 0;
  }

  /** The authorised-entry stream delivered its first update from `address`. */
  streaming(address: string): void {
    this.succeeded(address);
    this.#streamingOn = address;
    if (this.#lastStreamedOn !== undefined && this.#lastStreamedOn !== address) {
      this.#log.info({ server: address, previous: this.#lastStreamedOn }, `authorised-entry stream moved to server ${address}`);
    }
    this.#lastStreamedOn = address;
  }

  /** The stream on `address` ended (or was cancelled). */
  streamEnded(address: string): void {
    if (this.#streamingOn === address) this.#streamingOn = undefined;
  }
}

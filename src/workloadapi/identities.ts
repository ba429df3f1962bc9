/**
 * @module workloadapi/identities
 *
 * The small interface the Workload API endpoint depends on (declared here, SPIRE style,
 * and implemented by the agent's cache): attest a caller to selectors, watch what those
 * selectors entitle it to, mint JWT-SVIDs. The endpoint knows nothing of the CA, the
 * server, entries or rotation.
 */
import type { Socket } from 'node:net';

/** A workload selector, e.g. `{ type: 'unix', value: 'uid:1000' }`. */
export interface Selector {
  readonly type: string;
  readonly value: string;
}

/**
 * What the kernel reported about a caller at accept (see `src/agent/peercred`). Declared
 * here too, structurally identical, so the endpoint does not import the agent.
 */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Process start time in clock ticks since boot; with `pid` it names one process. */
  readonly startTime: number;
  /** `<dev>:<ino>` of the caller's executable at accept; undefined when unreadable. */
  readonly executable?: string;
}

/** Whether a caller is still the process that connected (see `src/agent/peercred`). */
export type CallerCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'exited' | 'pid-reused' | 'credentials-changed' | 'executable-changed'; readonly detail: string };

/** One X509-SVID the caller is entitled to. */
export interface X509Identity {
  /** Must equal the leaf certificate's URI SAN exactly (the agent guarantees it). */
  readonly spiffeId: string;
  /** DER certificates: leaf first, then intermediates, never the root. */
  readonly certificates: readonly Buffer[];
  /** Unencrypted PKCS#8 DER private key of the leaf. */
  readonly privateKeyPkcs8: Buffer;
  readonly hint?: string;
}

/** A trust domain's bundle in wire form. */
export interface BundleMaterial {
  /** Root certificates, DER concatenated. */
  readonly x509Authorities: Buffer;
  /** JWKS JSON bytes (JWT authorities; every key has a `kid`). */
  readonly jwks: Buffer;
}

/** The full state a caller is entitled to; sent whole on every change. */
export interface WorkloadUpdate {
  /** identities[0] is the default identity. Empty: the caller has no identity. */
  readonly identities: readonly X509Identity[];
  /** The agent's own trust domain bundle. */
  readonly bundle: BundleMaterial & { readonly trustDomain: string /* `spiffe://td` */ };
  /** Bundles of federated trust domains the caller's entries federate with, keyed by `spiffe://td`. */
  readonly federatedBundles: ReadonlyMap<string, BundleMaterial>;
  /** DER CRLs, if any (none today). */
  readonly crl?: readonly Buffer[];
}

export interface JwtSvidRequest {
  readonly audience: readonly string[];
  /** Only this identity; absent: one JWT-SVID per identity of the caller. */
  readonly spiffeId?: string;
}

export interface IssuedJwtSvid {
  readonly spiffeId: string;
  /** JWS compact serialization. */
  readonly token: string;
  readonly hint?: string;
}

/** Implemented by the agent's cache. */
export interface WorkloadIdentities {
  /** Selectors for the caller, from the workload attestors. Throwing → UNAVAILABLE. */
  attest(caller: PeerCredentials): Promise<Selector[]>;
  /**
   * Watch what `selectors` entitle a caller to. `onUpdate` is called at once (before or
   * soon after `subscribe` returns) with the current state, then with the full state on
   * every change. Returns the unsubscribe function.
   */
  subscribe(selectors: readonly Selector[], onUpdate: (update: WorkloadUpdate) => void): () => void;
  /**
   * JWT-SVIDs for the caller's identities (only `spiffeId`'s when given). Returns an empty
   * array when the caller has no (such) identity; throwing → UNAVAILABLE.
   */
  fetchJwtSvid(selectors: readonly Selector[], request: JwtSvidRequest): Promise<IssuedJwtSvid[]>;
}

/** Result of validating a JWT-SVID for ValidateJWTSVID. */
export interface ValidatedJwtSvid {
  readonly spiffeId: string;
  /** The token's claims, JSON values only. */
  readonly claims: Record<string, unknown>;
}

/**
 * Validates a JWT-SVID against the agent's bundles (the agent wires `src/spiffe/jwt`).
 * Throwing means "invalid" and becomes INVALID_ARGUMENT with the error's message.
 */
export type ValidateJwtSvid = (token: string, audience: string) => Promise<ValidatedJwtSvid>;

/** Reads and re-checks peer credentials (the agent wires `src/agent/peercred`). */
export interface PeerCredentialSource {
  /** Credentials of an accepted socket's peer; throwing refuses the connection. */
  read(socket: Socket): Promise<PeerCredentials>;
  /**
   * The caller is still the process that connected: same pid and start time (no PID
   * reuse), the effective uid/gid recorded at connect, the executable seen at accept (no
   * exec since). Synchronous, so it can run before every stream update.
   */
  verify(cred: PeerCredentials): CallerCheck;
}

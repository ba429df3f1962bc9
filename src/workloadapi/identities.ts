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
 * What the kernel reported about the process on the other end of a Workload API
 * connection, read at accept (`src/agent/peercred` reads it; the agent's peercred types
 * are these). Never taken from anything the caller sends.
 */
export interface PeerCredentials {
  /** Process ID of the peer when it connected. */
  readonly pid: number;
  /** Effective user ID of the peer when it connected (`SO_PEERCRED`). */
  readonly uid: number;
  /** Effective group ID of the peer when it connected (`SO_PEERCRED`). */
  readonly gid: number;
  /**
   * Start time of the process holding `pid` at accept, in clock ticks since boot
   * (`/proc/<pid>/stat` field 22). Together with `pid` it names one process for the
   * life of the machine; `pid` alone can be reused.
   */
  readonly startTime: number;
  /**
   * The executable the process ran at accept: `<dev>:<ino>` of the file behind
   * `/proc/<pid>/exe`. Undefined when the agent may not read that link (a non-root agent
   * and a caller of another uid). An `exec` changes it; nothing else does.
   */
  readonly executable?: string;
}

/**
 * Whether the process that connected is still the one the kernel described at connect,
 * checked before and after attestation and before every stream update.
 * - `exited`: no live process holds the pid any more;
 * - `pid-reused`: the pid now names another process (different start time);
 * - `credentials-changed`: its effective uid/gid differ from what `SO_PEERCRED` recorded
 *   at connect (a setuid/setgid `exec`, or `setuid()` after connecting);
 * - `executable-changed`: it `exec`ed another file since accept.
 */
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
  /** Why identities the caller might have had are not served (an entry template refusing a selector value); named in the PERMISSION_DENIED message. */
  readonly refusals?: readonly string[];
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
  /** Why identities `selectors` might have had are not served (see WorkloadUpdate.refusals). */
  refusals?(selectors: readonly Selector[]): readonly string[];
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

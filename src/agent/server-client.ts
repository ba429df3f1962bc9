/**
 * @module agent/server-client
 *
 * What the agent needs from the Mayfly server, declared by the agent (the consumer) with
 * only the calls it makes: node attestation, agent SVID renewal, batched X509-SVID
 * signing, JWT-SVID minting and the authorised-entry push stream. `grpc-client.ts`
 * implements it over the server API (TCP + mTLS); `testing.ts` has a hand-written fake.
 *
 * A client is bound to one set of TLS credentials (grpc-js channels cannot change their
 * client certificate), so the agent asks a `ServerClientFactory` for a new client whenever
 * its agent SVID or its view of the server's roots changes.
 */
import type { KeyObject } from 'node:crypto';
import type { RegistrationEntry } from '../registration/entry.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { MayflyError } from '../spiffe/errors.js';
import type { AgentErrorCode } from './agent-error.js';
import type { AgentStanding } from '../wire/server/agent-standing.js';

/** An X509-SVID as the server returns it (the key stays with the agent). */
export interface IssuedX509Svid {
  readonly spiffeId: string;
  /** DER: leaf first, then intermediates, never the root. */
  readonly certChain: readonly Buffer[];
  /** Unix seconds. */
  readonly expiresAt: number;
}

export interface IssuedJwtSvidWire {
  readonly spiffeId: string;
  readonly token: string;
  /** Unix seconds. */
  readonly expiresAt: number;
  readonly issuedAt: number;
}

/**
 * One item of a BatchNewX509SVID request. For an entry-template instance (issue 11),
 * `entryId` is the template entry's, `spiffeId` the ID the agent derived and
 * `templateSelectors` the caller selectors it took the values from; the server re-derives it.
 */
export interface NewX509SvidRequest {
  readonly entryId: string;
  readonly csr: Buffer;
  readonly spiffeId?: string;
  readonly templateSelectors?: readonly { readonly type: string; readonly value: string }[];
}

/** The template part of an SVID request (NewX509SvidRequest). */
export interface TemplateInstanceRequest {
  readonly spiffeId: string;
  readonly templateSelectors: readonly { readonly type: string; readonly value: string }[];
}

/** One item of a BatchNewX509SVID answer, in request order. */
export type NewX509SvidResult =
  | { readonly entryId: string; readonly ok: true; readonly svid: IssuedX509Svid }
  | { readonly entryId: string; readonly ok: false; readonly code: number; readonly message: string };

/** The full authorised state pushed by the server: sent at once, then on every change. */
export interface AuthorizedUpdate {
  readonly entries: readonly RegistrationEntry[];
  /** The server trust domain's bundle. */
  readonly bundle: Bundle;
  /** Bundles of trust domains the entries federate with (those the server knows). */
  readonly federatedBundles: readonly Bundle[];
  readonly sequence: number;
  /** IDs (CA certificate SKI, lowercase hex) of tainted X.509 authorities: re-issue what they signed. */
  readonly taintedX509Authorities?: readonly string[];
  /** Key IDs of tainted JWT authorities: drop JWT-SVIDs signed with them. */
  readonly taintedJwtAuthorities?: readonly string[];
  /** The server's X.509 CRLs (DER, one per authority; issue 10): re-issue what they list, serve them to workloads. */
  readonly x509Crls?: readonly Buffer[];
  /** Entries the agent is authorised for but the server does not serve, and why (issue 11: lapsed owner certification). */
  readonly withheldEntries?: readonly { readonly entryId: string; readonly spiffeId: string; readonly reason: string }[];
}

export interface AttestResult {
  readonly svid: IssuedX509Svid;
  readonly bundle: Bundle;
}

/** One delivery record as the agent ships it (AgentSync.ReportDeliveries; agent/delivery-log). */
export interface DeliveryRecord {
  readonly kind: 'x509' | 'jwt';
  readonly spiffeId: string;
  /** X.509 only: the leaf's serial, lowercase hex. */
  readonly serial?: string;
  /** JWT only. */
  readonly audience?: readonly string[];
  /** Unix seconds. */
  readonly expiresAt: number;
  /** Unix milliseconds by the agent's clock. */
  readonly deliveredAt: number;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly selectors: readonly string[];
}

/** A batch of delivery records with the counts of those the agent could not keep. */
export interface DeliveryReport {
  readonly deliveries: readonly DeliveryRecord[];
  /** Dropped since the last accepted report (buffer full). */
  readonly dropped: number;
  /** Buffered but unsent when the previous agent process ended, as counted at its last flush. */
  readonly lostAtRestart: number;
  /** The previous process ended uncleanly: more than `lostAtRestart` may be lost. */
  readonly lostAtRestartUnknownMore: boolean;
}

/** The server calls the agent makes. Failures reject with `ServerCallError`. */
export interface ServerClient {
  /**
   * Agent.AttestAgent: attestation evidence + CSR → agent SVID and the trust domain's
   * bundle. With `answerChallenge` (challenge–response evidence such as x509pop) the
   * evidence goes over SPIRE's AttestAgent stream, which carries the server's challenges.
   */
  attest(req: { type: string; payload: Buffer; csr: Buffer; answerChallenge?: (challenge: Buffer) => Promise<Buffer> }): Promise<AttestResult>;
  /** Agent.RenewAgent: a CSR for a fresh key → the new agent SVID. */
  renewAgent(csr: Buffer): Promise<IssuedX509Svid>;
  /** SVID.BatchNewX509SVID: one result per request item, in order. */
  newX509Svids(batch: readonly NewX509SvidRequest[]): Promise<NewX509SvidResult[]>;
  /** SVID.NewJWTSVID (`template`: for an entry-template instance). */
  newJwtSvid(entryId: string, audience: readonly string[], template?: TemplateInstanceRequest): Promise<IssuedJwtSvidWire>;
  /**
   * AgentSync.SubscribeAuthorizedEntries. `onError` is called once when the stream ends
   * for any reason other than cancellation (server gone, stream closed by the server).
   * Returns the cancel function.
   */
  subscribe(onUpdate: (u: AuthorizedUpdate) => void, onError: (err: ServerCallError) => void): () => void;
  /** AgentSync.ReportDeliveries (optional: a client without it ships no delivery records). */
  reportDeliveries?(report: DeliveryReport): Promise<{ recorded: number; refused: number }>;
  /** Closes the channel; calls in flight fail. */
  close(): void;
}

/** How the client authenticates the server and itself. */
export type ServerClientCredentials =
  /** Trust-on-first-use: the server's certificate is not verified (first attestation only). */
  | { readonly mode: 'insecure-bootstrap' }
  /** Verify the server against `roots`; no client certificate (attestation). */
  | { readonly mode: 'bootstrap'; readonly roots: readonly Buffer[] }
  /** mTLS with the agent SVID. */
  | { readonly mode: 'agent'; readonly roots: readonly Buffer[]; readonly certChain: readonly Buffer[]; readonly privateKey: KeyObject };

export type ServerClientFactory = (creds: ServerClientCredentials) => ServerClient;

/** gRPC status codes the agent branches on (numeric, as on the wire). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** A failed server call, with the gRPC status code it ended with. */
export class ServerCallError extends MayflyError<AgentErrorCode> {
  readonly grpcCode: number;
  /** Set when the server refused the call because of this agent's standing (its trailer). */
  readonly standing: AgentStanding | undefined;
  constructor(grpcCode: number, message: string, options?: { cause?: unknown; standing?: AgentStanding }) {
    super('ERR_AGENT_SERVER_CALL', message, options);
    this.grpcCode = grpcCode;
    this.standing = options?.standing;
  }
}

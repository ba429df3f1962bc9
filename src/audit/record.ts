/**
 * @module audit/record
 *
 * What one ledger record says and how records are chained.
 *
 * Threat: a record edited, deleted, reordered or inserted after it was written, by anyone
 * with write access to the datastore. Each record's hash covers its position, the previous
 * record's hash and its exact text (`sha256("mayfly-audit-v1\n" seq "\n" prevHash "\n" body)`),
 * so any such change breaks a link that `verifyAuditChain` names; a rewrite of the whole tail
 * is caught by the signed checkpoints (`checkpoint.ts`).
 */
import { createHash } from 'node:crypto';

/** Who asked for what a record describes, as the server authenticated them. */
export interface AuditActor {
  /** `admin` (admin socket or an admin SVID), `agent` (an attested agent's SVID), `server` (the server itself, e.g. an automatic rotation), `anonymous`. */
  readonly kind: 'admin' | 'agent' | 'server' | 'anonymous';
  /** The caller's SPIFFE ID, or e.g. `uid:0` for the admin socket. */
  readonly id: string;
}

export interface X509SvidIssued {
  readonly kind: 'x509-svid.issued';
  readonly serial: string;
  readonly spiffeId: string;
  readonly notAfter: number;
  readonly entryId?: string;
  readonly agentId?: string;
  /** The entry's selectors (`type:value`): what a workload needed to receive it. */
  readonly selectors?: readonly string[];
}

export interface JwtSvidIssued {
  readonly kind: 'jwt-svid.issued';
  readonly spiffeId: string;
  readonly audience: readonly string[];
  readonly notAfter: number;
  readonly keyId: string;
  readonly entryId?: string;
  readonly agentId?: string;
}

/** An administrative change: the API method and what it changed, with secrets left out. */
export interface AdminChange {
  readonly kind: 'admin';
  readonly method: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** A CA authority step (prepare/activate/taint/revoke), by an operator or the CA's own rotation. */
export interface AuthorityChange {
  readonly kind: 'authority';
  readonly authority: 'x509' | 'jwt';
  readonly step: string;
  readonly authorityId: string;
  /** The JWT authority's public key (JWK), so checkpoints it signs stay verifiable after it left the bundle. */
  readonly publicJwk?: Readonly<Record<string, unknown>>;
}

/** A server started writing to the ledger, with the JWT keys it may sign checkpoints with. */
export interface ServerStarted {
  readonly kind: 'server.started';
  readonly jwtKeys: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/**
 * An agent reported that it handed an SVID to a local caller on its Workload API. The
 * server checked that `spiffeId` is one this agent is authorised for; the caller fields
 * and `serial` are the agent's account (the agent is the only witness of its socket).
 */
export interface SvidDelivered {
  readonly kind: 'svid.delivered';
  readonly agentId: string;
  readonly svidType: 'x509' | 'jwt';
  readonly spiffeId: string;
  /** X.509 only. */
  readonly serial?: string;
  /** JWT only. */
  readonly audience?: readonly string[];
  /** The SVID's expiry, unix seconds. */
  readonly notAfter: number;
  /** Unix milliseconds by the agent's clock. */
  readonly deliveredAt: number;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly selectors: readonly string[];
}

/**
 * Delivery records that never reached the ledger: dropped by the agent (buffer full), lost
 * with an agent process (buffered but unsent when it ended), or refused by the server (an
 * identity the agent is not authorised for, or malformed).
 */
export interface DeliveriesLost {
  readonly kind: 'svid.deliveries-lost';
  readonly agentId: string;
  readonly reason: 'agent-buffer-full' | 'agent-restart' | 'refused';
  readonly count: number;
  /** `agent-restart` only: true when more may have been lost than `count` (the process ended uncleanly). */
  readonly atLeast?: boolean;
}

/**
 * An owner certified that an entry is still needed (issue 11, server/certification), or an
 * admin exempted it from certification (`exempt`, break-glass: served although not
 * certified, until its owner certifies it). The actor is the admin identity that asked.
 */
export interface EntryCertified {
  readonly kind: 'entry.certified';
  readonly entryId: string;
  readonly spiffeId: string;
  /** The owner that certified ('' for an exemption given without one). */
  readonly owner: string;
  readonly note: string;
  readonly exempt: boolean;
}

/** Certification was switched on: entries older than this record are due one interval after it. */
export interface CertificationEnabled {
  readonly kind: 'certification.enabled';
  readonly intervalSeconds: number;
  readonly graceSeconds: number;
}

/** A signed statement of the chain head (see checkpoint.ts). */
export interface Checkpoint {
  readonly kind: 'checkpoint';
  /** The record this checkpoint vouches for: the one right before it. */
  readonly head: { readonly seq: number; readonly hash: string };
  /** A JWT-SVID for the server's ID whose only audience names the head. */
  readonly token: string;
  /**
   * The signing key's public JWK, so the checkpoint stays checkable after the key left the
   * bundle (or died with a memory key manager). It is trusted only as far as a later
   * checkpoint signed by a key of the trust bundle covers this record (audit/verify).
   */
  readonly publicJwk?: Readonly<Record<string, unknown>>;
}

export type AuditEvent = X509SvidIssued | JwtSvidIssued | AdminChange | AuthorityChange | ServerStarted | Checkpoint | SvidDelivered | DeliveriesLost | EntryCertified | CertificationEnabled;

/** A record as written: the event with when, by whom, and which server wrote it. */
export type AuditRecordBody = AuditEvent & {
  readonly v: 1;
  /** Unix milliseconds by the writing server's clock (servers' clocks may disagree; `seq` orders). */
  readonly time: number;
  /** The writing server's instance ID. */
  readonly server: string;
  readonly actor: AuditActor;
};

/** A stored record with its link fields. */
export interface AuditRecord {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
  readonly body: string;
}

export const AUDIT_EVENT_KINDS: readonly AuditEvent['kind'][] = ['x509-svid.issued', 'jwt-svid.issued', 'admin', 'authority', 'server.started', 'checkpoint', 'svid.delivered', 'svid.deliveries-lost', 'entry.certified', 'certification.enabled'];

/** The link function the datastore calls: the record's hash from its position, predecessor and text. */
export function auditLink(seq: number, prevHash: string, body: string): string {
  return createHash('sha256').update(`mayfly-audit-v1\n${seq}\n${prevHash}\n${body}`).digest('hex');
}

/** The text of a record (JSON, fields in a fixed order). */
export function encodeRecordBody(body: AuditRecordBody): string {
  const { v, time, server, actor, ...event } = body;
  return JSON.stringify({ v, time, server, actor, ...event });
}

/** Parses a record's text; undefined when it is not a record this build understands. */
export function decodeRecordBody(text: string): AuditRecordBody | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  if (r.v !== 1 || typeof r.time !== 'number' || typeof r.server !== 'string' || typeof r.kind !== 'string') return undefined;
  if (!(AUDIT_EVENT_KINDS as readonly string[]).includes(r.kind)) return undefined;
  const actor = r.actor as Record<string, unknown> | undefined;
  if (typeof actor !== 'object' || actor === null || typeof actor.kind !== 'string' || typeof actor.id !== 'string') return undefined;
  return r as unknown as AuditRecordBody;
}

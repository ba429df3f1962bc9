/**
 * Mayfly's refusals of an agent as SPIRE's API reports them: the gRPC code SPIRE uses and,
 * for the standing refusals, a `grpc-status-details-bin` that decodes (google.rpc.Status →
 * Any → spire.api.types.PermissionDeniedDetails) to the reason SPIRE's agent acts on.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { MayflyError } from '../../spiffe/errors.js';
import { agentBanned, agentEvicted, agentSvidSuperseded, badRequest, denied, entryNotAuthorized, toServiceError } from '../status.js';
import { PERMISSION_DENIED_REASON, toSpireError } from './agent-status.js';

/** Minimal protobuf reader: field number → values (varints as numbers, length-delimited as Buffers). */
function fields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const n = key >>> 3;
    const value = (key & 7) === 0 ? varint() : ((): Buffer => {
      const len = varint();
      const b = buf.subarray(i, i + len);
      i += len;
      return b;
    })();
    out.set(n, [...(out.get(n) ?? []), value]);
  }
  return out;
}

function reasonOf(err: { metadata: { get(k: string): unknown[] } }): { code: number; message: string; typeUrl: string; reason: number } {
  const raw = err.metadata.get('grpc-status-details-bin')[0] as Buffer;
  const st = fields(raw);
  const any = fields(st.get(3)?.[0] as Buffer);
  const details = fields(any.get(2)?.[0] as Buffer);
  return { code: st.get(1)?.[0] as number, message: (st.get(2)?.[0] as Buffer).toString('utf8'), typeUrl: (any.get(1)?.[0] as Buffer).toString('utf8'), reason: details.get(1)?.[0] as number };
}

describe('toSpireError', () => {
  it('a banned agent: PERMISSION_DENIED with AGENT_BANNED details (and Mayfly\'s standing trailer kept)', () => {
    const e = toSpireError(toServiceError(agentBanned('spiffe://td/spire/agent/x')));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(reasonOf(e)).toEqual({ code: status.PERMISSION_DENIED, message: 'agent spiffe://td/spire/agent/x is banned', typeUrl: 'type.googleapis.com/spire.api.types.PermissionDeniedDetails', reason: PERMISSION_DENIED_REASON.AGENT_BANNED });
    expect(e.metadata.get('mayfly-agent-standing')).toEqual(['banned']);
  });

  it('an evicted agent: PERMISSION_DENIED with AGENT_NOT_ATTESTED, as SPIRE (Mayfly\'s API says UNAUTHENTICATED)', () => {
    const mayfly = toServiceError(agentEvicted('spiffe://td/spire/agent/x'));
    expect(mayfly.code).toBe(status.UNAUTHENTICATED);
    const e = toSpireError(mayfly);
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(reasonOf(e).reason).toBe(PERMISSION_DENIED_REASON.AGENT_NOT_ATTESTED);
  });

  it('an SVID a renewal replaced: PERMISSION_DENIED with AGENT_NOT_ACTIVE', () => {
    const e = toSpireError(toServiceError(agentSvidSuperseded('spiffe://td/spire/agent/x')));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(reasonOf(e).reason).toBe(PERMISSION_DENIED_REASON.AGENT_NOT_ACTIVE);
    // Any other PERMISSION_DENIED carries no details.
    expect(toSpireError(toServiceError(denied('not yours'))).metadata.get('grpc-status-details-bin')).toEqual([]);
  });

  it('an entry not authorised to the caller: NOT_FOUND "entry not found or not authorized", as SPIRE', () => {
    const e = toSpireError(toServiceError(entryNotAuthorized('entry "x" is not authorised for this agent')));
    expect([e.code, e.details]).toEqual([status.NOT_FOUND, 'entry not found or not authorized']);
  });

  it('a bad join token: INVALID_ARGUMENT, no details', () => {
    const e = toSpireError(toServiceError(new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is invalid')));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.metadata.get('grpc-status-details-bin')).toEqual([]);
  });

  it('anything else passes unchanged', () => {
    const original = toServiceError(badRequest('csr is missing'));
    expect(toSpireError(original)).toBe(original);
    const internal = toServiceError(new Error('boom'));
    expect(toSpireError(internal)).toBe(internal);
  });
});

/**
 * @module server/api/entry-certify
 *
 * `Entry.CertifyEntry` (issue 11, item 5): an owner's attestation that an entry is still
 * needed, or an exemption (break-glass), recorded in the audit ledger by server/certification.
 *
 * Who may certify (how owners bind to admin identities): owners are free-text team names,
 * bound to admin identities by server.conf's `registrars` — a scoped registrar may certify
 * only entries in its scope, whose owner is therefore one of its `owners`
 * (PERMISSION_DENIED otherwise). An unscoped admin (the admin socket, an unscoped admin SVID)
 * may certify for any owner. Either way the caller names the owner it certifies for, and it
 * must be the entry's (FAILED_PRECONDITION otherwise: a certification is a statement about
 * that owner, not a rubber stamp). An entry without an owner cannot be certified until it
 * has one. Exemptions need an unscoped admin and a note: a team cannot exempt itself from review.
 *
 * Threat: a certification nobody can trace, or one made for someone else's identity. Every
 * attestation is in the hash-chained ledger with the admin identity that made it.
 */
import type { handleUnaryCall } from '@grpc/grpc-js';
import { MayflyError } from '../../spiffe/errors.js';
import { certificationNoteProblem, entryIdProblem, ownerProblem } from '../../registration/entry.js';
import { auditActorOf } from '../audit-events.js';
import type { Transport } from '../auth.js';
import { unary, type ApiContext } from '../context.js';
import { checkEntryVisible, describeScope, scopeOfCaller } from '../registrar-scope.js';
import { badRequest, denied, notFound } from '../status.js';

interface CertifyEntryRequest {
  entry_id: string;
  owner: string;
  note: string;
  exempt: boolean;
}

function refused(message: string): MayflyError {
  return new MayflyError('ERR_CERTIFICATION_REFUSED', message);
}

export function certifyEntryHandler(ctx: ApiContext, t: Transport): handleUnaryCall<CertifyEntryRequest, unknown> {
  return unary<CertifyEntryRequest, unknown>(ctx, t, 'CertifyEntry', 'admin', async (req, caller) => {
    const gate = ctx.certification;
    if (gate === undefined) throw refused('owner certification is off on this server: enable it with server.conf server { certification { interval = "90d" grace = "14d" } }');
    const idProblem = entryIdProblem(req.entry_id);
    if (idProblem !== undefined) throw badRequest(`entry_id ${idProblem}`);
    const owner = req.owner ?? '';
    const note = req.note ?? '';
    const exempt = req.exempt === true;
    const noteProblem = certificationNoteProblem(note);
    if (noteProblem !== undefined) throw badRequest(`note ${noteProblem}`);
    if (owner !== '') {
      const p = ownerProblem(owner);
      if (p !== undefined) throw badRequest(`owner ${p}`);
    }
    const entry = await ctx.ds.getEntry(req.entry_id);
    if (entry === undefined) throw notFound(`no entry with id ${req.entry_id}`);
    const scope = scopeOfCaller(caller);
    checkEntryVisible(scope, entry);
    if (exempt) {
      if (scope !== undefined) throw denied(`an exemption from certification is break-glass for unscoped admins (the admin socket or an unscoped admin SVID); ${describeScope(scope)}`);
      if (note === '') throw badRequest('an exemption needs a note saying why (e.g. -note "INC-1234: certifier on leave")');
    } else {
      if (owner === '') throw badRequest('owner is required: name the owner you certify for (-owner), which must be the entry\'s');
      if (entry.owner === '') throw refused(`entry ${entry.entryId} has no owner, so nobody can certify it: set one first (entry update -owner)`);
    }
    if (owner !== '' && owner !== entry.owner) {
      throw refused(`entry ${entry.entryId} is owned by ${JSON.stringify(entry.owner)}, not ${JSON.stringify(owner)}: only its owner certifies it`);
    }
    const s = await gate.certify(auditActorOf(caller), entry, { owner, note, exempt });
    return { entry_id: entry.entryId, state: s.state, certified_at: s.certifiedAt, due_at: s.dueAt, lapses_at: s.lapsesAt };
  });
}

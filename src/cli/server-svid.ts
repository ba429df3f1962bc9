/**
 * @module cli/server-svid
 *
 * `mayfly-server x509 mint`, `x509 revoke`, `jwt mint` and `localauthority x509|jwt show|prepare|activate|taint|revoke`.
 *
 * `x509 revoke -serial S | -spiffeID ID | -entryID E [-reason R]` revokes issued
 * X509-SVIDs (issue 10; server/api/revoke): the CRLs are re-issued and pushed to agents
 * before it answers. Unknown serials exit with the not-found code (3).
 *
 * `x509 mint` makes the key pair here and sends only a CSR: the private key never leaves
 * this process, and with `-write DIR` it is written with mode 0600 (certificates 0644).
 * Every file (and `jwt mint -write FILE`) goes through securefs's writeFileAtomic: an
 * exclusive, no-follow temporary file with a random name, renamed over the target, so a
 * reader never sees half a key, a symlink at the target (or a pre-planted temporary name)
 * cannot redirect the write, and a directory another user can change is refused.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { exportPkcs8Pem, generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { ensureOutputDir, writeFileAtomic } from '../securefs/index.js';
import type { WireBundle, WireJwtSvid, WireX509Svid } from '../server/messages.js';
import { isRevocationReason, REVOCATION_REASONS } from '../spiffe/x509/crl.js';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import { clientCommand, collect, fields, secondsArg, spiffeIdArg, timeText, withServer, type CommandContext } from './server-common.js';

export function addSvidCommands(program: Command): void {
  const x509 = program.command('x509').description('X509-SVIDs');
  clientCommand(x509.command('mint').description('mint an X509-SVID (the key is made locally)'))
    .option('--spiffe-id <id>', 'SPIFFE ID of the SVID')
    .option('--ttl <duration>', 'lifetime (e.g. 1h; default: the server default)')
    .option('--dns <name>', 'DNS SAN (repeatable)', collect)
    .option('--write <dir>', 'write svid.pem, key.pem (0600) and bundle.pem to this directory')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ spiffeId?: string; ttl?: string; dns?: string[]; write?: string }>();
      const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID', { required: true }) as string;
      const ttl = secondsArg(o.ttl, '-ttl') ?? 0;
      // Judge (or make) the directory before anything is minted for it.
      if (o.write !== undefined) ensureOutputDir(o.write);
      const key = generateKeyPair('ec-p256');
      const csr = createCsr({ privateKey: key.privateKey });
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ svid: WireX509Svid }>('SVID', 'MintX509SVID', { csr, spiffe_id: spiffeId, ttl, dns_names: o.dns ?? [] });
        const bundle = await ctx.call<WireBundle>('Bundle', 'GetBundle', {});
        const svidPem = pemEncodeCertificates(res.svid.cert_chain);
        const keyPem = exportPkcs8Pem(key.privateKey);
        const bundlePem = pemEncodeCertificates(bundle.x509_authorities);
        const info = { spiffe_id: res.svid.spiffe_id, expires_at: res.svid.expires_at, serial_number: res.svid.serial_number };
        if (o.write !== undefined) {
          const paths = { svid: join(o.write, 'svid.pem'), key: join(o.write, 'key.pem'), bundle: join(o.write, 'bundle.pem') };
          writeFileAtomic(paths.svid, svidPem, { mode: 0o644 });
          writeFileAtomic(paths.key, keyPem, { mode: 0o600 });
          writeFileAtomic(paths.bundle, bundlePem, { mode: 0o644 });
          emit(ctx.io, ctx.format, {
            json: { ...info, files: paths },
            text: [`X509-SVID written to ${paths.svid}`, `Private key written to ${paths.key}`, `Root CAs written to ${paths.bundle}`].join('\n'),
          });
          return;
        }
        emit(ctx.io, ctx.format, {
          json: { ...info, svid_pem: svidPem, private_key_pem: keyPem, bundle_pem: bundlePem },
          text: `X509-SVID:\n${svidPem}\nPrivate key:\n${keyPem}\nRoot CAs:\n${bundlePem}`,
        });
      });
    });

  clientCommand(x509.command('revoke').description('revoke X509-SVIDs: one by serial, or every unexpired one of a SPIFFE ID or an entry'))
    .option('--serial <hex>', 'serial number of the X509-SVID (hex, as x509 mint or openssl x509 -serial print it)')
    .option('--spiffe-id <id>', 'revoke every unexpired X509-SVID issued for this SPIFFE ID')
    .option('--entry-id <id>', 'revoke every unexpired X509-SVID issued for this registration entry')
    .option('--reason <reason>', `RFC 5280 reason: ${REVOCATION_REASONS.join(', ')} (default unspecified)`)
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ serial?: string; spiffeId?: string; entryId?: string; reason?: string }>();
      const given = [o.serial, o.spiffeId, o.entryId].filter((v) => v !== undefined && v !== '');
      if (given.length !== 1) throw new CliUsageError('give exactly one of -serial, -spiffeID and -entryID');
      if (o.reason !== undefined && !isRevocationReason(o.reason)) throw new CliUsageError(`-reason ${JSON.stringify(o.reason)} is not one of ${REVOCATION_REASONS.join(', ')}`);
      const spiffeId = o.spiffeId === undefined ? undefined : spiffeIdArg(o.spiffeId, '-spiffeID', { required: true });
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ revoked: RevokedWire[] }>('SVID', 'RevokeX509SVIDs', {
          serial_number: o.serial ?? '',
          spiffe_id: spiffeId ?? '',
          entry_id: o.entryId ?? '',
          reason: o.reason ?? '',
        });
        const revoked = res.revoked ?? [];
        emit(ctx.io, ctx.format, {
          json: { revoked },
          text: () =>
            [
              `Revoked ${revoked.filter((r) => !r.already_revoked).length} X509-SVID(s)${revoked.some((r) => r.already_revoked) ? ` (${revoked.filter((r) => r.already_revoked).length} already revoked)` : ''}:`,
              ...revoked.map((r) =>
                fields(
                  [
                    ['  Serial number', r.serial_number],
                    ['  SPIFFE ID', r.spiffe_id],
                    ['  Entry ID', r.entry_id === '' ? '(none)' : r.entry_id],
                    ['  Reason', r.already_revoked ? `${r.reason} (already revoked)` : r.reason],
                    ['  Expires at', timeText(Number(r.expires_at))],
                  ],
                  16,
                ),
              ),
            ].join('\n\n'),
        });
      });
    });

  const jwt = program.command('jwt').description('JWT-SVIDs');
  clientCommand(jwt.command('mint').description('mint a JWT-SVID'))
    .option('--spiffe-id <id>', 'SPIFFE ID of the SVID')
    .option('--audience <aud>', 'audience (repeatable, at least one)', collect)
    .option('--ttl <duration>', 'lifetime (e.g. 5m; default: the server default)')
    .option('--write <file>', 'write the token to this file (0600)')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ spiffeId?: string; audience?: string[]; ttl?: string; write?: string }>();
      const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID', { required: true }) as string;
      const audience = o.audience ?? [];
      if (audience.length === 0) throw new CliUsageError('at least one -audience is required');
      const ttl = secondsArg(o.ttl, '-ttl') ?? 0;
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ svid: WireJwtSvid }>('SVID', 'MintJWTSVID', { spiffe_id: spiffeId, audience, ttl });
        if (o.write !== undefined) {
          writeFileAtomic(o.write, `${res.svid.token}\n`, { mode: 0o600 });
          emit(ctx.io, ctx.format, { json: { ...res.svid, token: undefined, file: o.write }, text: `JWT-SVID written to ${o.write}` });
          return;
        }
        emit(ctx.io, ctx.format, { json: res.svid, text: res.svid.token });
      });
    });

  addAuthorityCommands(program);
}

interface RevokedWire {
  serial_number: string;
  spiffe_id: string;
  entry_id: string;
  expires_at: number | string;
  reason: string;
  already_revoked: boolean;
}

interface AuthorityStateWire {
  authority_id: string;
  expires_at: number;
}

function slotText(label: string, kindName: string, s: AuthorityStateWire | null | undefined): string {
  if (s === null || s === undefined || s.authority_id === '') return `${label} ${kindName} authority:\n  No ${label.toLowerCase()} ${kindName} authority found`;
  return `${label} ${kindName} authority:\n${fields([['  Authority ID', s.authority_id], ['  Expires at', timeText(s.expires_at)]], 15)}`;
}

function addAuthorityCommands(program: Command): void {
  const la = program.command('localauthority').description("the CA's own X.509 and JWT authorities");
  for (const [kind, label, kindName] of [['x509', 'X509', 'X.509'], ['jwt', 'JWT', 'JWT']] as const) {
    const group = la.command(kind).description(`${kindName} authorities`);
    clientCommand(group.command('show').description(`show the active, prepared and old ${kindName} authorities`)).action(async (_o: unknown, cmd: Command) => {
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ active: AuthorityStateWire | null; prepared: AuthorityStateWire | null; old: AuthorityStateWire | null }>(
          'LocalAuthority',
          `Get${label}AuthorityState`,
          {},
        );
        emit(ctx.io, ctx.format, {
          json: res,
          text: () => [slotText('Active', kindName, res.active), slotText('Prepared', kindName, res.prepared), slotText('Old', kindName, res.old)].join('\n\n'),
        });
      });
    });
    clientCommand(group.command('prepare').description(`prepare a new ${kindName} authority`)).action(async (_o: unknown, cmd: Command) => {
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ authority: AuthorityStateWire }>('LocalAuthority', `Prepare${label}Authority`, {});
        emit(ctx.io, ctx.format, { json: res, text: slotText('Prepared', kindName, res.authority) });
      });
    });
    for (const [op, done] of [
      ['activate', 'Activated'],
      ['taint', 'Tainted'],
      ['revoke', 'Revoked'],
    ] as const) {
      clientCommand(group.command(op).description(`${op} a ${kindName} authority`))
        .option('--authority-id <id>', 'the authority (see show)')
        .action(async (_o: unknown, cmd: Command) => {
          const id = cmd.opts<{ authorityId?: string }>().authorityId;
          if (id === undefined || id === '') throw new CliUsageError('-authorityID is required');
          await withServer(cmd, async (ctx: CommandContext) => {
            const method = `${op[0]?.toUpperCase()}${op.slice(1)}${label}Authority`;
            const res = await ctx.call<{ authority: AuthorityStateWire }>('LocalAuthority', method, { authority_id: id });
            emit(ctx.io, ctx.format, { json: res, text: slotText(done, kindName, res.authority) });
          });
        });
    }
  }
}

/**
 * @module bench/delegation
 *
 * Delegated tokens (issue 12) as ratios against primitives measured in the same run:
 * a token exchange (RS256 user-token verify with jose + policy + ES256 sign) against a raw
 * RS256 verify plus a raw ES256 sign of the same sizes; `authorizeCall` decisions/s with
 * 1,000 rules (the deciding rule last) against one raw ES256 verify. Alternating 50 ms slices,
 * median of 3 rounds.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { TOKEN_TYPE_JWT, TokenExchanger, type UpstreamIssuer } from '../src/delegation/exchange.js';
import { parseDelegationPolicy } from '../src/delegation/policy.js';
import { authorizeCall, type CallRule } from '../src/sdk/authorize-call.js';
import type { BenchResult } from './jwt.js';

async function runAsync(fn: () => unknown, ms: number): Promise<[number, number]> {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(ms * 1e6));
  let n = 0;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 16; i++) await fn();
    n += 16;
    now = process.hrtime.bigint();
  }
  return [n, Number(now - start)];
}

async function paired(a: () => unknown, b: () => unknown, ms: number): Promise<[number, number]> {
  let na = 0, ta = 0, nb = 0, tb = 0;
  for (let spent = 0; spent < ms; spent += 50) {
    const [n1, t1] = await runAsync(a, 50);
    const [n2, t2] = await runAsync(b, 50);
    na += n1; ta += t1; nb += n2; tb += t2;
  }
  return [(na * 1e9) / ta, (nb * 1e9) / tb];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function benchDelegation(opts: { msPerMeasure?: number; rounds?: number } = {}): Promise<BenchResult[]> {
  const ms = opts.msPerMeasure ?? 1000;
  const rounds = opts.rounds ?? 3;
  const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const agent = 'spiffe://example.org/agent/assistant';
  const jwks = { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] };
  const exchanger = (keys: UpstreamIssuer['jwks']): TokenExchanger => new TokenExchanger({
    issuer: 'https://oidc.example.org', trustDomain: 'example.org',
    upstream: { issuer: 'https://idp.test', audience: 'agents', algorithms: ['RS256'], jwks: keys },
    policy: parseDelegationPolicy({ rules: [{ agents: ['spiffe://example.org/agent/*'], users: ['alice'], audiences: ['https://mcp/'], scopes: ['tools:read'] }] }),
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: ours.privateKey }), ownKeys: () => new Map([['k1', ours.publicKey]]),
  });
  const x = exchanger(jwks);
  // Keys as OIDC discovery serves them (delegation/upstream-jwks): a refreshable source, the kid known.
  const xd = exchanger({ current: () => jwks, refresh: () => Promise.resolve() });
  const user = await new SignJWT({ sub: 'alice', scope: 'tools:read' }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('agents').setExpirationTime('1h').sign(idp.privateKey);
  const req = { actor: { id: agent }, subjectToken: user, subjectTokenType: TOKEN_TYPE_JWT, resources: ['https://mcp/'] };
  const input = Buffer.from(user.slice(0, user.lastIndexOf('.')), 'latin1');
  const rsSig = Buffer.from(user.slice(user.lastIndexOf('.') + 1), 'base64url');
  const ecOpts = { key: ours.privateKey, dsaEncoding: 'ieee-p1363' as const };
  const raw = (): void => {
    verify('sha256', input, idp.publicKey, rsSig);
    sign('sha256', input, ecOpts);
  };
  const rules: CallRule[] = Array.from({ length: 999 }, (_, i) => ({ id: `r${i}`, effect: 'allow' as const, agents: [`spiffe://example.org/agent/a${i}`], tools: [`tool${i}`] }));
  rules.push({ id: 'last', effect: 'allow', agents: ['spiffe://example.org/agent/*'], groups: ['eng'], tools: ['read_file'], resources: ['repo:*'] });
  const call = { actor: agent, user: { sub: 'alice', groups: ['eng'] }, tool: 'read_file', resource: 'repo:x' };
  const ecSig = sign('sha256', input, ecOpts);
  const rawEcVerify = (): void => void verify('sha256', input, { key: ours.publicKey, dsaEncoding: 'ieee-p1363' }, ecSig);
  await runAsync(() => x.exchange(req), 100);
  const exd: number[] = [], exdBase: number[] = [], exdRatio: number[] = [];
  const ex: number[] = [], exBase: number[] = [], exRatio: number[] = [], az: number[] = [], azBase: number[] = [], azRatio: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const [b, e] = await paired(raw, () => x.exchange(req), ms);
    exBase.push(b); ex.push(e); exRatio.push(e / b);
    const [bd, ed] = await paired(raw, () => xd.exchange(req), ms);
    exdBase.push(bd); exd.push(ed); exdRatio.push(ed / bd);
    const [b2, a] = await paired(rawEcVerify, () => authorizeCall(call, { rules }), ms);
    azBase.push(b2); az.push(a); azRatio.push(a / b2);
  }
  const RAW = 'raw RS256 verify + ES256 sign';
  const RAWV = 'raw ECDSA P-256 verify';
  return [
    { name: RAW, perSecond: median(exBase), baseline: median(exBase), ratio: 1, baselineName: RAW },
    { name: 'token exchange (RS256 user token → ES256 delegated)', perSecond: median(ex), baseline: median(exBase), ratio: median(exRatio), baselineName: RAW },
    { name: 'token exchange, upstream keys by discovery source', perSecond: median(exd), baseline: median(exdBase), ratio: median(exdRatio), baselineName: RAW },
    { name: 'authorizeCall, 1,000 rules (last decides)', perSecond: median(az), baseline: median(azBase), ratio: median(azRatio), baselineName: RAWV },
  ];
}

/**
 * @module bench/jwt
 *
 * JWT-SVID costs as ratios against the raw primitive measured in the same run on the same
 * key: mint (ES256) against a raw ECDSA P-256 `crypto.sign`, validate against a raw
 * `crypto.verify`. Each pair (primitive, our operation) runs in alternating 50 ms slices
 * so a noisy neighbour slows both alike; each figure is the median of 3 rounds of ~1 s each.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { Bundle } from '../src/spiffe/bundle/index.js';
import { SpiffeId } from '../src/spiffe/id.js';
import { JwtSvidSigner, validateJwtSvid } from '../src/spiffe/jwt/index.js';

export interface BenchResult {
  name: string;
  perSecond: number;
  baseline: number;
  ratio: number;
  /** what `baseline` measured */
  baselineName: string;
}

/** Runs `fn` in batches for about `ms` milliseconds; returns [calls, nanoseconds]. */
function run(fn: () => void, ms: number): [number, number] {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(ms * 1e6));
  let n = 0;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 32; i++) fn();
    n += 32;
    now = process.hrtime.bigint();
  }
  return [n, Number(now - start)];
}

/**
 * Rates of `a` and `b` (calls per second) over about `ms` milliseconds each, measured in
 * alternating 50 ms slices so that load from other processes hits both alike.
 */
function paired(a: () => void, b: () => void, ms: number): [number, number] {
  let na = 0, ta = 0, nb = 0, tb = 0;
  for (let spent = 0; spent < ms; spent += 50) {
    const [n1, t1] = run(a, 50);
    const [n2, t2] = run(b, 50);
    na += n1; ta += t1; nb += n2; tb += t2;
  }
  return [(na * 1e9) / ta, (nb * 1e9) / tb];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export async function benchJwt(opts: { msPerMeasure?: number; rounds?: number } = {}): Promise<BenchResult[]> {
  const ms = opts.msPerMeasure ?? 1000;
  const rounds = opts.rounds ?? 3;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spiffeId = SpiffeId.parse('spiffe://example.org/ns/prod/sa/bench');
  const now = new Date();
  const signer = new JwtSvidSigner({ privateKey, kid: 'bench', now: () => now });
  const bundle = new Bundle({ trustDomain: spiffeId.trustDomain, jwtAuthorities: [['bench', publicKey]] });
  const mintReq = { spiffeId, audience: ['bench-audience'], ttlSeconds: 300 };
  const token = signer.mint(mintReq);
  // The raw baselines sign/verify a buffer as long as a token's signing input.
  const input = Buffer.from(token.slice(0, token.lastIndexOf('.')), 'latin1');
  const signOpts = { key: privateKey, dsaEncoding: 'ieee-p1363' as const };
  const verifyOpts = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
  const sig = sign('sha256', input, signOpts);
  const validateCfg = { audience: 'bench-audience', bundles: bundle, now };

  const rawSign: number[] = [];
  const mint: number[] = [];
  const rawVerify: number[] = [];
  const validate: number[] = [];
  const mintRatio: number[] = [];
  const validateRatio: number[] = [];
  // Warm up (JIT, OpenSSL contexts).
  run(() => signer.mint(mintReq), 100);
  run(() => validateJwtSvid(token, validateCfg), 100);
  for (let r = 0; r < rounds; r++) {
    const [rs, m] = paired(() => sign('sha256', input, signOpts), () => signer.mint(mintReq), ms);
    const [rv, v] = paired(() => verify('sha256', input, verifyOpts, sig), () => validateJwtSvid(token, validateCfg), ms);
    rawSign.push(rs);
    mint.push(m);
    rawVerify.push(rv);
    validate.push(v);
    mintRatio.push(m / rs);
    validateRatio.push(v / rv);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const signBase = median(rawSign);
  const verifyBase = median(rawVerify);
  const SIGN = 'raw ECDSA P-256 sign';
  const VERIFY = 'raw ECDSA P-256 verify';
  return [
    { name: SIGN, perSecond: signBase, baseline: signBase, ratio: 1, baselineName: SIGN },
    { name: 'JWT-SVID mint (ES256)', perSecond: median(mint), baseline: signBase, ratio: median(mintRatio), baselineName: SIGN },
    { name: VERIFY, perSecond: verifyBase, baseline: verifyBase, ratio: 1, baselineName: VERIFY },
    { name: 'JWT-SVID validate (ES256)', perSecond: median(validate), baseline: verifyBase, ratio: median(validateRatio), baselineName: VERIFY },
  ];
}

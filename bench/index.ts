/**
 * @module bench
 *
 * `npm run bench`: every benchmark suite, printed as rates and ratios against a baseline
 * measured in the same run. Add a suite by appending it to `suites`.
 */
import { pathToFileURL } from 'node:url';
import { benchAgent } from './agent.js';
import { benchAudit } from './audit.js';
import { benchInventory } from './inventory.js';
import { benchUsage } from './usage.js';
import { benchCertification } from './certification.js';
import { benchBundleEndpoint } from './bundle-endpoint.js';
import { benchCli } from './cli.js';
import { benchDelegation } from './delegation.js';
import { benchFederation } from './federation.js';
import { benchJwt } from './jwt.js';
import { benchRevocation } from './revocation.js';
import { benchSdkTls } from './sdk-tls.js';
import { benchServer, type ServerBenchLine } from './server.js';
import { benchSpire } from './spire.js';
import { benchSpireAgent } from './spire-agent.js';
import { benchX509 } from './x509.js';

export interface BenchLine {
  name: string;
  perSecond: number;
  baseline: number;
  ratio: number;
  /** what `baseline` measured (defaults to the raw ECDSA P-256 sign rate) */
  baselineName?: string;
}

const suites: Array<[string, () => Promise<Array<BenchLine | ServerBenchLine>>]> = [['jwt', benchJwt], ['x509', benchX509], ['server', () => benchServer()], ['agent', () => benchAgent()], ['revocation', () => benchRevocation()], ['spire', () => benchSpire()], ['spire-agent', () => benchSpireAgent()], ['bundle-endpoint', () => benchBundleEndpoint()], ['audit', () => benchAudit()], ['usage', () => benchUsage()], ['inventory', () => benchInventory()], ['certification', () => benchCertification()], ['federation', () => benchFederation()], ['delegation', () => benchDelegation()], ['cli', () => benchCli()], ['sdk-tls', () => benchSdkTls()]];

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatLine(r: BenchLine | ServerBenchLine): string {
  if ('text' in r) return `${r.name}: ${r.text}`;
  return `${r.name}: ${fmt(r.perSecond)}/s  (ratio ${r.ratio.toFixed(2)} vs ${r.baselineName ?? 'raw ECDSA P-256 sign'} ${fmt(r.baseline)}/s)`;
}

/** `npm run bench` runs every suite; `npm run bench -- x509 jwt` only those named. */
export async function main(only: readonly string[] = process.argv.slice(2)): Promise<void> {
  const unknown = only.filter((n) => !suites.some(([name]) => name === n));
  if (unknown.length > 0) throw new TypeError(`unknown bench suite(s) ${unknown.join(', ')}; known: ${suites.map(([n]) => n).join(', ')}`);
  for (const [name, run] of suites) {
    if (only.length > 0 && !only.includes(name)) continue;
    for (const line of await run()) console.log(formatLine(line));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

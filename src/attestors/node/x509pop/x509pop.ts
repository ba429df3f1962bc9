/**
 * @module attestors/node/x509pop
 *
 * The `x509pop` node attestor (server side), wire-compatible with SPIRE v1.13.3's: a VM or
 * bare-metal node provisioned with a certificate and key proves it holds the key. The agent
 * sends its certificate chain (pop.ts); the server verifies it against the operator's CA
 * certificates (`external_pki`) or the server's own trust bundle (`spiffe`), sends a
 * challenge with a fresh nonce, and verifies the signature the agent answers with.
 *
 * Threats it stops:
 * - a stolen certificate without its key: the answer must be a signature, by the leaf's
 *   key, over the server's nonce (a certificate is public; only the key holder can answer);
 * - a replayed response: the nonce comes from the CSPRNG for this attestation alone and is
 *   forgotten when it ends, so an answer recorded from another attestation does not verify;
 * - a certificate that does not chain to the configured CAs, or is expired or not yet
 *   valid, or whose issuers may not issue it (chain.ts);
 * - a leaf key not meant for signing: its keyUsage must include digitalSignature.
 * Malformed evidence (not JSON, no certificate, undecodable DER, a response of the wrong
 * shape) is ERR_ATTESTATION_MALFORMED (InvalidArgument, as SPIRE); evidence that does not
 * hold up is ERR_ATTESTATION_FAILED (PermissionDenied, as SPIRE).
 *
 * The agent ID is `/spire/agent/` + `agent_path_template` (default `/x509pop/<SHA-1
 * fingerprint of the leaf>`; in spiffe mode `/x509pop/<SVID path minus the prefix>`). The
 * same certificate attests again to the same ID (`canReattest`, as SPIRE). Selectors, as
 * SPIRE spells them: `subject:cn:<CN>`, `ca:fingerprint:<SHA-1>` of every CA in every
 * verified chain, `serialnumber:<hex>`, and `san:<key>:<value>` for each URI SAN
 * `x509pop://<trust domain>/<key>/<value>`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Selector } from '../../../registration/selector.js';
import { isMayflyError } from '../../../spiffe/errors.js';
import type { ParsedCertificate } from '../../../spiffe/x509/parse.js';
import type { NodeAttestationContext, NodeAttestationResult, NodeAttestor } from '../attestor.js';
import { parseTrusted, verifyNodeChain } from './chain.js';
import { parseName, templateData } from './names.js';
import {
  decodeAttestationData, decodeResponse, encodeChallenge, fingerprint, generateChallenge, keyKindOf, refused, serialNumberHex, verifyResponse, X509POP_TYPE,
} from './pop.js';
import { AgentPathTemplate } from './template.js';

export { X509POP_TYPE } from './pop.js';

/** SPIRE's defaults. */
export const DEFAULT_TEMPLATE_EXTERNAL_PKI = '/{{ .PluginName }}/{{ .Fingerprint }}';
export const DEFAULT_TEMPLATE_SPIFFE = '/{{ .PluginName }}/{{ .SVIDPathTrimmed }}';
export const DEFAULT_SPIFFE_PREFIX = '/spire-exchange/';

export type X509PopMode = 'external_pki' | 'spiffe';

export interface X509PopAttestorConfig {
  /** Default external_pki. */
  readonly mode?: X509PopMode;
  /** external_pki: the CA certificates (DER) node certificates must chain to. */
  readonly caCertificates?: readonly Uint8Array[];
  /** spiffe: the server trust domain's X.509 authorities (DER), read at each attestation. */
  readonly serverX509Authorities?: () => Promise<readonly Uint8Array[]>;
  /** spiffe: the SVID path prefix to require and trim (default /spire-exchange/). */
  readonly spiffePrefix?: string;
  /** Go text/template for the agent path after /spire/agent (template.ts). */
  readonly agentPathTemplate?: string;
}

/** The `x509pop` URI SANs of `leaf` as SPIRE reads them: `x509pop://<td>/<key>/<value...>`. */
function sanSelectors(leaf: ParsedCertificate, trustDomain: string): Record<string, string> {
  const out: Record<string, string> = {};
  const prefix = `x509pop://${trustDomain}/`;
  for (const u of leaf.uriSans) {
    if (!u.startsWith(prefix)) continue;
    let path: string;
    try {
      path = decodeURIComponent(new URL(u).pathname);
    } catch {
      continue;
    }
    const trimmed = path.replace(/^\/+|\/+$/g, '');
    const cut = trimmed.indexOf('/');
    if (cut < 0) continue; // SPIRE logs and skips a SAN without <key>/<value>.
    out[trimmed.slice(0, cut)] = trimmed.slice(cut + 1);
  }
  return out;
}

export class X509PopAttestor implements NodeAttestor {
  readonly type = X509POP_TYPE;
  readonly #mode: X509PopMode;
  readonly #trusted: readonly ParsedCertificate[];
  readonly #serverAuthorities: (() => Promise<readonly Uint8Array[]>) | undefined;
  readonly #prefix: string;
  readonly #template: AgentPathTemplate;

  constructor(cfg: X509PopAttestorConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('X509PopAttestor needs a config object');
    const mode = cfg.mode ?? 'external_pki';
    if (mode !== 'external_pki' && mode !== 'spiffe') throw new TypeError('x509pop mode can only be either spiffe or external_pki');
    this.#mode = mode;
    if (mode === 'external_pki') {
      if (cfg.caCertificates === undefined || cfg.caCertificates.length === 0) throw new TypeError('x509pop external_pki mode needs the CA certificates node certificates chain to');
      this.#trusted = parseTrusted(cfg.caCertificates);
    } else {
      if (cfg.caCertificates !== undefined) throw new TypeError('x509pop spiffe mode uses the server trust bundle; CA certificates cannot be given');
      if (typeof cfg.serverX509Authorities !== 'function') throw new TypeError('x509pop spiffe mode needs serverX509Authorities');
      this.#trusted = [];
    }
    this.#serverAuthorities = cfg.serverX509Authorities;
    let prefix = cfg.spiffePrefix ?? DEFAULT_SPIFFE_PREFIX;
    if (!prefix.endsWith('/')) prefix += '/';
    this.#prefix = prefix;
    const source = cfg.agentPathTemplate ?? (mode === 'spiffe' ? DEFAULT_TEMPLATE_SPIFFE : DEFAULT_TEMPLATE_EXTERNAL_PKI);
    try {
      this.#template = AgentPathTemplate.parse(source);
    } catch (err) {
      throw new TypeError(`x509pop agent_path_template ${JSON.stringify(source)}: ${(err as Error).message}`, { cause: err });
    }
  }

  async attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    const certificates = decodeAttestationData(payload);
    const trusted = this.#mode === 'spiffe' ? parseTrusted(await (this.#serverAuthorities as () => Promise<readonly Uint8Array[]>)()) : this.#trusted;
    const { leaf, chains } = verifyNodeChain(certificates, trusted, ctx.now);

    // The leaf is trusted: now the node proves it holds the leaf's key.
    if (!leaf.keyUsage?.digitalSignature) throw refused('certificate not intended for digital signature use (its keyUsage lacks digitalSignature)');
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: leaf.spki, format: 'der', type: 'spki' });
    } catch (err) {
      throw refused('the leaf public key cannot be read', err);
    }
    const kind = keyKindOf(publicKey);
    if (kind === undefined) throw refused(`unsupported public key type ${publicKey.asymmetricKeyType ?? 'unknown'} (RSA or ECDSA only)`);
    if (ctx.challenge === undefined) {
      throw refused("proof of possession needs a challenge, which this transport cannot carry: attest over SPIRE's Agent.AttestAgent stream");
    }
    const challenge = generateChallenge(kind);
    const answer = await ctx.challenge(encodeChallenge(challenge));
    const response = decodeResponse(answer, kind);
    if (!verifyResponse(publicKey, challenge, response)) {
      throw refused(`challenge response verification failed: ${kind === 'rsa' ? 'RSA' : 'ECDSA'} signature verify failed (not signed by the certificate's key over this attestation's nonce)`);
    }

    let svidPath = '';
    if (this.#mode === 'spiffe') {
      const uri = leaf.uriSans.find((u) => u.startsWith('spiffe://'));
      if (uri === undefined) throw refused('valid SVID x509 cert not found (the leaf has no spiffe:// URI SAN)');
      svidPath = new URL(uri).pathname;
      if (!svidPath.startsWith(this.#prefix)) throw refused(`the leaf's SPIFFE ID path ${svidPath} does not start with the SVID prefix ${this.#prefix}`);
      svidPath = svidPath.slice(this.#prefix.length);
    }

    const td = ctx.trustDomain.name;
    const sans = sanSelectors(leaf, td);
    const fp = fingerprint(leaf.der);
    const serialHex = serialNumberHex(leaf.serialNumber);
    let path: string;
    try {
      path = this.#template.execute(templateData({ leaf, trustDomain: td, fingerprint: fp, serialNumberHex: serialHex, svidPathTrimmed: svidPath, sanSelectors: sans }));
    } catch (err) {
      throw refused(`failed to make the agent ID from agent_path_template: ${(err as Error).message}`, err);
    }
    let agentId;
    try {
      agentId = ctx.trustDomain.idWithPath(`/spire/agent${path}`);
    } catch (err) {
      if (isMayflyError(err)) throw refused(`agent_path_template made an invalid agent path ${JSON.stringify(path)}: ${err.message}`, err);
      throw err;
    }

    const selectors: Selector[] = [];
    const add = (value: string): void => void selectors.push({ type: X509POP_TYPE, value });
    const cn = templateCommonName(leaf);
    if (cn !== '') add(`subject:cn:${cn}`);
    const seen = new Set<string>();
    for (const chain of chains) {
      for (const ca of chain.slice(1)) {
        const f = fingerprint(ca.der);
        if (seen.has(f)) continue;
        seen.add(f);
        add(`ca:fingerprint:${f}`);
      }
    }
    add(`serialnumber:${serialHex}`);
    for (const [k, v] of Object.entries(sans)) add(`san:${k}:${v}`);
    return { agentId, selectors, canReattest: true };
  }
}

function templateCommonName(leaf: ParsedCertificate): string {
  return parseName(leaf.subject).CommonName;
}

/** For config checks: a template the attestor would refuse. */
export function checkAgentPathTemplate(source: string): string | undefined {
  try {
    AgentPathTemplate.parse(source);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

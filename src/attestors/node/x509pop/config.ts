/**
 * @module attestors/node/x509pop/config
 *
 * SPIRE's `NodeAttestor "x509pop"` plugin_data, read with every problem reported:
 *
 * server:
 *   mode = "external_pki"                 # default; or "spiffe" (the server's own bundle)
 *   ca_bundle_path = "/etc/mayfly/node-ca.pem"       # external_pki: one of these two
 *   ca_bundle_paths = ["/etc/a.pem", "/etc/b.pem"]
 *   spiffe_prefix = "/spire-exchange/"    # spiffe mode (SPIRE's docs call it svid_prefix;
 *                                         # its code reads spiffe_prefix: both are accepted)
 *   agent_path_template = "/x509pop/{{ .Subject.CommonName }}"
 *
 * agent:
 *   private_key_path = "/etc/mayfly/node.key"   # required (PKCS#8, PKCS#1 or SEC1 PEM)
 *   certificate_path = "/etc/mayfly/node.pem"   # required (leaf first; more certs follow it)
 *   intermediates_path = "/etc/mayfly/node-chain.pem"
 *
 * The CA files are read when the server reads its configuration: a missing file or one
 * without certificates is a problem at start, as in SPIRE.
 */
import { readFileSync } from 'node:fs';
import { checkKeys, str } from '../../../config/accessors.js';
import { isHclObject, type HclObject } from '../../../config/hcl.js';
import { parsedConfig, type ParsedConfig } from '../../../config/plugins.js';
import { Problems } from '../../../config/problems.js';
import { parsePemCertificates } from '../../../spiffe/x509/pem.js';
import { parseCertificate } from '../../../spiffe/x509/parse.js';
import { checkAgentPathTemplate, type X509PopMode } from './x509pop.js';

export interface X509PopServerPluginConfig {
  readonly mode: X509PopMode;
  /** external_pki: the CA certificates read from the bundle files (DER). */
  readonly caCertificates?: readonly Buffer[];
  readonly spiffePrefix?: string;
  readonly agentPathTemplate?: string;
}

export interface X509PopAgentConfig {
  readonly privateKeyPath: string;
  readonly certificatePath: string;
  readonly intermediatesPath?: string;
}

const SERVER_KEYS = ['mode', 'ca_bundle_path', 'ca_bundle_paths', 'spiffe_prefix', 'svid_prefix', 'agent_path_template'];

/** PEM certificates of `path` (DER), or a problem. */
export function loadCertificates(path: string, what: string, p: Problems): Buffer[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    p.add(`${what}: unable to load ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return [];
  }
  let certs: Buffer[];
  try {
    certs = parsePemCertificates(text);
    for (const c of certs) parseCertificate(c);
  } catch (err) {
    p.add(`${what}: ${path} does not hold PEM certificates: ${(err as Error).message}`);
    return [];
  }
  if (certs.length === 0) p.add(`${what}: ${path} holds no PEM certificate`);
  return certs;
}

export function parseX509PopServerPluginData(data: HclObject, where: string): ParsedConfig<X509PopServerPluginConfig> {
  const p = new Problems();
  if (!isHclObject(data)) return { problems: [`${where} must be a block`] };
  checkKeys(data, SERVER_KEYS, where, p);
  const modeRaw = str(data, 'mode', where, p);
  const mode = modeRaw === undefined || modeRaw === '' ? 'external_pki' : modeRaw;
  if (mode !== 'external_pki' && mode !== 'spiffe') p.add(`${where}.mode can only be either spiffe or external_pki (got ${JSON.stringify(mode)})`);
  const one = str(data, 'ca_bundle_path', where, p);
  const many = data.ca_bundle_paths;
  let paths: string[] = [];
  if (many !== undefined) {
    if (!Array.isArray(many) || many.some((x) => typeof x !== 'string' || x === '')) p.add(`${where}.ca_bundle_paths must be a list of non-empty strings`);
    else paths = many as string[];
  }
  const hasOne = one !== undefined && one !== '';
  let caCertificates: Buffer[] | undefined;
  if (mode === 'external_pki') {
    if (hasOne && paths.length > 0) p.add(`${where}: only one of ca_bundle_path or ca_bundle_paths can be configured, not both`);
    const all = hasOne ? [one] : paths;
    if (all.length === 0) p.add(`${where}: one of ca_bundle_path or ca_bundle_paths must be configured (the CA certificates node certificates chain to)`);
    caCertificates = all.flatMap((path) => loadCertificates(path, `${where}.${hasOne ? 'ca_bundle_path' : 'ca_bundle_paths'}`, p));
  } else if (mode === 'spiffe' && (hasOne || paths.length > 0)) {
    p.add(`${where}: you can not use ca_bundle_path or ca_bundle_paths in spiffe mode`);
  }
  const spiffePrefix = str(data, 'spiffe_prefix', where, p);
  const svidPrefix = str(data, 'svid_prefix', where, p);
  if (spiffePrefix !== undefined && svidPrefix !== undefined) p.add(`${where}: give spiffe_prefix or svid_prefix (the same setting), not both`);
  const prefix = spiffePrefix ?? svidPrefix;
  if (prefix !== undefined && mode !== 'spiffe') p.add(`${where}.${spiffePrefix !== undefined ? 'spiffe_prefix' : 'svid_prefix'} only applies in spiffe mode`);
  const agentPathTemplate = str(data, 'agent_path_template', where, p);
  if (agentPathTemplate !== undefined && agentPathTemplate !== '') {
    const bad = checkAgentPathTemplate(agentPathTemplate);
    if (bad !== undefined) p.add(`${where}.agent_path_template: failed to parse agent path template ${JSON.stringify(agentPathTemplate)}: ${bad}`);
  }
  return parsedConfig(p, {
    mode: mode as X509PopMode,
    ...(caCertificates !== undefined ? { caCertificates } : {}),
    ...(prefix !== undefined ? { spiffePrefix: prefix } : {}),
    ...(agentPathTemplate !== undefined && agentPathTemplate !== '' ? { agentPathTemplate } : {}),
  });
}

export function parseX509PopAgentPluginData(data: HclObject, where: string): ParsedConfig<X509PopAgentConfig> {
  const p = new Problems();
  if (!isHclObject(data)) return { problems: [`${where} must be a block`] };
  checkKeys(data, ['private_key_path', 'certificate_path', 'intermediates_path'], where, p);
  const privateKeyPath = str(data, 'private_key_path', where, p);
  const certificatePath = str(data, 'certificate_path', where, p);
  const intermediatesPath = str(data, 'intermediates_path', where, p);
  if (privateKeyPath === undefined || privateKeyPath === '') p.add(`${where}.private_key_path is required`);
  if (certificatePath === undefined || certificatePath === '') p.add(`${where}.certificate_path is required`);
  return parsedConfig(p, {
    privateKeyPath: privateKeyPath ?? '',
    certificatePath: certificatePath ?? '',
    ...(intermediatesPath !== undefined && intermediatesPath.trim() !== '' ? { intermediatesPath } : {}),
  });
}

/**
 * @module attestors/workload/k8s/config
 *
 * SPIRE's agent `WorkloadAttestor "k8s"` `plugin_data`, read into K8sWorkloadAttestorConfig.
 * Keys: `kubelet_secure_port` (10250), `kubelet_read_only_port` (off), `kubelet_ca_path`,
 * `skip_kubelet_verification`, `token_path`, `node_name_env` (MY_NODE_NAME), `node_name`,
 * `max_poll_attempts`, `poll_retry_interval` (Go duration, first backoff step), and Mayfly's
 * `kubelet_host` (127.0.0.1). Problems are returned together, not thrown.
 */
import type { K8sWorkloadAttestorConfig } from './k8s.js';
import { DEFAULT_NODE_NAME_ENV, type KubeletClientConfig } from './kubelet.js';

const KEYS = [
  'kubelet_secure_port', 'kubelet_read_only_port', 'kubelet_ca_path', 'skip_kubelet_verification', 'token_path',
  'node_name_env', 'node_name', 'max_poll_attempts', 'poll_retry_interval', 'kubelet_host',
] as const;

function ms(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v * 1000;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)(ms|s|m)$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

function int(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
}

export function parseK8sWorkloadPluginData(
  data: unknown,
  opts: { where?: string; env?: NodeJS.ProcessEnv } = {},
): { config?: K8sWorkloadAttestorConfig; problems: string[] } {
  const where = opts.where ?? 'plugins.WorkloadAttestor.k8s.plugin_data';
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const d = (data ?? {}) as Record<string, unknown>;
  if (typeof d !== 'object' || Array.isArray(d)) return { problems: [`${where} must be a block`] };
  for (const k of Object.keys(d)) if (!(KEYS as readonly string[]).includes(k)) problems.push(`unknown key ${where}.${k} (known: ${KEYS.join(', ')})`);
  const kubelet: KubeletClientConfig = {};
  const str = (k: string): string | undefined => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') problems.push(`${where}.${k} must be a non-empty string`);
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const port = (k: string): number | undefined => {
    if (d[k] === undefined) return undefined;
    const n = int(d[k]);
    if (n === undefined || n < 1 || n > 65535) problems.push(`${where}.${k} must be a port from 1 to 65535`);
    return n;
  };
  const secure = port('kubelet_secure_port');
  const readOnly = port('kubelet_read_only_port');
  if (secure !== undefined && readOnly !== undefined) problems.push(`${where}: set kubelet_secure_port or kubelet_read_only_port, not both`);
  if (secure !== undefined) kubelet.securePort = secure;
  if (readOnly !== undefined) kubelet.readOnlyPort = readOnly;
  const ca = str('kubelet_ca_path');
  if (ca !== undefined) kubelet.caPath = ca;
  const token = str('token_path');
  if (token !== undefined) kubelet.tokenPath = token;
  const host = str('kubelet_host');
  if (host !== undefined) kubelet.host = host;
  if (d.skip_kubelet_verification !== undefined) {
    if (typeof d.skip_kubelet_verification !== 'boolean') problems.push(`${where}.skip_kubelet_verification must be true or false`);
    else kubelet.skipKubeletVerification = d.skip_kubelet_verification;
  }
  const nodeName = str('node_name') ?? env[str('node_name_env') ?? DEFAULT_NODE_NAME_ENV];
  if (nodeName) kubelet.serverName = nodeName;
  const cfg: K8sWorkloadAttestorConfig = { kubelet };
  if (d.max_poll_attempts !== undefined) {
    const n = int(d.max_poll_attempts);
    if (n === undefined || n < 1 || n > 1000) problems.push(`${where}.max_poll_attempts must be from 1 to 1000`);
    else cfg.maxPollAttempts = n;
  }
  if (d.poll_retry_interval !== undefined) {
    const t = ms(d.poll_retry_interval);
    if (t === undefined || t === 0) problems.push(`${where}.poll_retry_interval must be a duration such as "500ms"`);
    else cfg.pollInitialDelayMs = t;
  }
  return problems.length > 0 ? { problems } : { config: cfg, problems };
}

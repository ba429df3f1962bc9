/**
 * @module attestors/node/k8s_psat/payload
 *
 * The evidence an agent sends for `k8s_psat` (`attestation_data.payload`): JSON
 * `{"cluster": "<name>", "token": "<projected service-account JWT>"}`, as SPIRE's k8s_psat
 * agent plugin sends it. Shared by the agent side (which builds it) and the server side
 * (which decodes it before asking the API server about the token).
 */

export const K8S_PSAT_TYPE = 'k8s_psat';
/** Audience of the projected token, unless configured otherwise (SPIRE uses `spire-server`). */
export const DEFAULT_K8S_PSAT_AUDIENCE = 'mayfly-server';
/** Where the agent's DaemonSet mounts its projected token (SPIRE: /var/run/secrets/tokens/spire-agent). */
export const DEFAULT_K8S_PSAT_TOKEN_PATH = '/var/run/secrets/tokens/mayfly-agent';
/** Largest payload accepted (bytes); real projected tokens are 1-2 KiB. */
export const MAX_K8S_PSAT_PAYLOAD = 64 * 1024;

export interface PsatPayload {
  cluster: string;
  token: string;
}

const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function encodePsatPayload(p: PsatPayload): Buffer {
  return Buffer.from(JSON.stringify({ cluster: p.cluster, token: p.token }), 'utf8');
}

/** Decodes and shape-checks a payload; throws Error (with an operator-facing message) when it is malformed. */
export function decodePsatPayload(payload: Uint8Array): PsatPayload {
  if (!(payload instanceof Uint8Array) || payload.length === 0) throw new Error('attestation payload is empty');
  if (payload.length > MAX_K8S_PSAT_PAYLOAD) throw new Error(`attestation payload is over ${MAX_K8S_PSAT_PAYLOAD} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new Error('attestation payload is not JSON {"cluster", "token"}');
  }
  const d = doc as Partial<Record<'cluster' | 'token', unknown>>;
  if (typeof doc !== 'object' || doc === null || typeof d.cluster !== 'string' || typeof d.token !== 'string' || d.cluster === '') {
    throw new Error('attestation payload must be JSON {"cluster": string, "token": string}');
  }
  if (!JWT_RE.test(d.token)) throw new Error('attestation payload token is not a compact JWT');
  return { cluster: d.cluster, token: d.token };
}

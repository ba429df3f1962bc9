/**
 * @module server/config-listeners
 *
 * The `health_checks { … }` and `telemetry { Prometheus { … } }` blocks of `server.conf`:
 * the HTTP listeners for `/metrics` and for SPIRE's health checks.
 */
import { block, bool, checkKeys, port, str } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';

export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 9988;

export interface HttpListenerSettings {
  enabled: boolean;
  host: string;
  port: number;
}

export interface ListenerSettings {
  /** `/metrics` (and `/live`, `/ready`). */
  metrics: HttpListenerSettings;
  /** SPIRE's `health_checks` listener (off unless `listener_enabled = true`). */
  health: HttpListenerSettings & { livePath: string; readyPath: string };
}

/** The listeners the file's top level (`root`) asks for, over the defaults. */
export function readListeners(root: HclObject, p: Problems): ListenerSettings {
  const s: ListenerSettings = {
    metrics: { enabled: true, host: DEFAULT_METRICS_HOST, port: DEFAULT_METRICS_PORT },
    health: { enabled: false, host: '127.0.0.1', port: 8080, livePath: '/live', readyPath: '/ready' },
  };
  const hc = block(root, 'health_checks', '', p);
  if (hc !== undefined) {
    const w = 'health_checks';
    checkKeys(hc, ['listener_enabled', 'bind_address', 'bind_port', 'live_path', 'ready_path'], w, p);
    s.health.enabled = bool(hc, 'listener_enabled', w, p) ?? false;
    s.health.host = str(hc, 'bind_address', w, p) ?? s.health.host;
    s.health.port = port(hc.bind_port, 'health_checks.bind_port', p) ?? s.health.port;
    for (const k of ['live_path', 'ready_path'] as const) {
      const v = str(hc, k, w, p);
      if (v === undefined) continue;
      if (!/^\/[A-Za-z0-9._~\-/]{0,255}$/.test(v)) p.add(`health_checks.${k} must be a path starting with '/'`);
      else if (k === 'live_path') s.health.livePath = v;
      else s.health.readyPath = v;
    }
  }
  const tel = block(root, 'telemetry', '', p);
  if (tel !== undefined) {
    checkKeys(tel, ['Prometheus'], 'telemetry', p);
    const prom = block(tel, 'Prometheus', 'telemetry', p);
    if (prom !== undefined) {
      checkKeys(prom, ['host', 'port'], 'telemetry.Prometheus', p);
      s.metrics.host = str(prom, 'host', 'telemetry.Prometheus', p) ?? s.metrics.host;
      s.metrics.port = port(prom.port, 'telemetry.Prometheus.port', p) ?? s.metrics.port;
    } else s.metrics.enabled = false;
  }
  return s;
}

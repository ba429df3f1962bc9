/**
 * @module config/listeners
 *
 * The top-level `health_checks { … }` and `telemetry { Prometheus { … } }` blocks of
 * `server.conf` and `agent.conf` (SPIRE's spellings): the HTTP listeners for `/metrics`
 * and for SPIRE's health checks. One parser for both binaries; each gives its defaults
 * (the server serves metrics on 127.0.0.1:9988 unless told otherwise, the agent only
 * when a `telemetry { Prometheus { … } }` block or `-metricsPort` asks).
 *
 * `telemetry` without a `Prometheus` block turns metrics off; `Prometheus {}` without a
 * port uses the binary's default port. `health_checks` is off unless
 * `listener_enabled = true` (SPIRE's default), on 127.0.0.1:8080 with `/live` and `/ready`.
 */
import { block, bool, checkKeys, port, str } from './accessors.js';
import type { HclObject } from './hcl.js';
import type { Problems } from './problems.js';

export const DEFAULT_METRICS_HOST = '127.0.0.1';
/** The server's metrics port. */
export const DEFAULT_METRICS_PORT = 9988;
/** The agent's metrics port (beside the server's, so both fit on one host). */
export const DEFAULT_AGENT_METRICS_PORT = 9989;

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

/** What a binary serves when its file says nothing. */
export interface ListenerDefaults {
  /** Whether `/metrics` is served without a `telemetry` block (server: yes; agent: no). */
  metricsEnabled: boolean;
  metricsPort: number;
}

const SERVER_DEFAULTS: ListenerDefaults = { metricsEnabled: true, metricsPort: DEFAULT_METRICS_PORT };
export const AGENT_LISTENER_DEFAULTS: ListenerDefaults = { metricsEnabled: false, metricsPort: DEFAULT_AGENT_METRICS_PORT };

/** The listeners the file's top level (`root`) asks for, over the defaults (the server's unless given). */
export function readListeners(root: HclObject, p: Problems, defaults: ListenerDefaults = SERVER_DEFAULTS): ListenerSettings {
  const s: ListenerSettings = {
    metrics: { enabled: defaults.metricsEnabled, host: DEFAULT_METRICS_HOST, port: defaults.metricsPort },
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
      s.metrics.enabled = true;
      s.metrics.host = str(prom, 'host', 'telemetry.Prometheus', p) ?? s.metrics.host;
      s.metrics.port = port(prom.port, 'telemetry.Prometheus.port', p) ?? s.metrics.port;
    } else s.metrics.enabled = false;
  }
  return s;
}

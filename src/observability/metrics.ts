/**
 * @module observability/metrics
 *
 * Prometheus plumbing both binaries share (prom-client, a registry per process part, never
 * the global one): a registry with Node's process metrics under a prefix, its exposition
 * for `/metrics`, gRPC status code names, and a grpc-js server interceptor that reports
 * every call's method, status code and duration to a recorder (the server counts its API,
 * the agent its Workload API; observability/rpc-interceptor, which needs no prom-client).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { MetricsExposition } from './http-endpoints.js';

import { grpcCodeName } from './grpc-code-name.js';

export { grpcCodeName };
export { rpcInterceptor, shortMethod, type RpcRecorder } from './rpc-interceptor.js';

/** A fresh registry; with `processMetrics` (default true) Node's process metrics under `prefix`. */
export function newRegistry(opts: { prefix: string; processMetrics?: boolean }): Registry {
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: opts.prefix });
  return registry;
}

/** What `/metrics` serves for a registry. */
export function metricsOf(registry: Registry): MetricsExposition {
  return {
    get contentType() {
      return registry.contentType;
    },
    text: () => registry.metrics(),
  };
}

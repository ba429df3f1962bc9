/**
 * @module workloadapi/workloadapi-error
 *
 * The codes the Workload API endpoint raises (stable: never rename one).
 */
export type WorkloadApiEndpointErrorCode = 'ERR_WORKLOAD_API_HTTP2';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<WorkloadApiEndpointErrorCode, 'workloadapi'> {}
}

/**
 * @module observability/rpc-interceptor
 *
 * A grpc-js server interceptor that reports every call's method, status code and duration
 * to a recorder (the server counts its API, the agent its Workload API). It loads no
 * prom-client: an agent without a metrics listener counts calls without it (issue 18).
 */
import { ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder, type ServerInterceptingCallInterface, type ServerInterceptor } from '@grpc/grpc-js';
import { grpcCodeName } from './grpc-code-name.js';

/** Told of every finished call; `method` is `Service/Method` without the package. */
export interface RpcRecorder {
  rpcEnded(method: string, code: string, seconds: number): void;
}

/** '/mayfly.server.v1.Entry/ListEntries' → 'Entry/ListEntries'; '/SpiffeWorkloadAPI/FetchX509SVID' stays 'SpiffeWorkloadAPI/FetchX509SVID'. */
export function shortMethod(path: string): string {
  return path.replace(/^\/(?:[^/]*\.)?([^./]+\/[^/]+)$/, '$1');
}

/**
 * A grpc-js server interceptor reporting each call once: with the status it ends with,
 * or CANCELLED when the client went away first. `now` gives milliseconds (monotonic is
 * best; default `performance.now`).
 */
export function rpcInterceptor(recorder: RpcRecorder, now: () => number = () => performance.now()): ServerInterceptor {
  return (descriptor, call: ServerInterceptingCallInterface) => {
    const method = shortMethod(descriptor.path);
    const started = now();
    let reported = false;
    const report = (code: string): void => {
      if (reported) return;
      reported = true;
      recorder.rpcEnded(method, code, Math.max(0, now() - started) / 1000);
    };
    const responder = new ResponderBuilder()
      .withStart((next) => {
        next(new ServerListenerBuilder().withOnCancel(() => report('CANCELLED')).build());
      })
      .withSendStatus((st, next) => {
        report(grpcCodeName(st.code));
        next(st);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}

import * as grpc from '@grpc/grpc-js';
import { Counter } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpEndpoints } from './http-endpoints.js';
import { metricsOf, newRegistry, rpcInterceptor, shortMethod, type RpcRecorder } from './metrics.js';

const echo: grpc.ServiceDefinition = {
  Say: {
    path: '/test.v1.Echo/Say',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('rpcInterceptor', () => {
  it('reports each call once with its method, status code and a duration from the injected clock', async () => {
    const ended: [string, string, number][] = [];
    const recorder: RpcRecorder = { rpcEnded: (m, c, s) => void ended.push([m, c, s]) };
    let ms = 1000;
    const server = new grpc.Server({ interceptors: [rpcInterceptor(recorder, () => (ms += 250))] });
    server.addService(echo, {
      Say(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
        if (call.request.toString() === 'fail') cb({ code: grpc.status.PERMISSION_DENIED, details: 'no' } as grpc.ServiceError);
        else cb(null, call.request);
      },
    });
    const port = await new Promise<number>((ok, fail) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))));
    cleanups.push(async () => void server.forceShutdown());
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(async () => client.close());
    const say = (text: string): Promise<grpc.status> =>
      new Promise((done) => {
        const def = echo.Say as grpc.MethodDefinition<Buffer, Buffer>;
        client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, Buffer.from(text), (err) => done(err === null ? grpc.status.OK : err.code));
      });
    expect(await say('hi')).toBe(grpc.status.OK);
    expect(await say('fail')).toBe(grpc.status.PERMISSION_DENIED);
    expect(ended).toEqual([
      ['Echo/Say', 'OK', 0.25],
      ['Echo/Say', 'PERMISSION_DENIED', 0.25],
    ]);
  });

  it('shortens method paths to Service/Method', () => {
    expect(shortMethod('/mayfly.server.v1.Entry/ListEntries')).toBe('Entry/ListEntries');
    expect(shortMethod('/SpiffeWorkloadAPI/FetchX509SVID')).toBe('SpiffeWorkloadAPI/FetchX509SVID');
  });
});

describe('newRegistry and HttpEndpoints', () => {
  it('serves a registry as /metrics over real HTTP, with process metrics under the prefix', async () => {
    const registry = newRegistry({ prefix: 'mayfly_test_' });
    const c = new Counter({ name: 'mayfly_test_things_total', help: 'things', registers: [registry] });
    c.inc(2);
    const http = new HttpEndpoints({ host: '127.0.0.1', port: 0, metrics: metricsOf(registry), ready: () => ({ ready: true, checks: {} }), livePath: '/alive' });
    await http.start();
    cleanups.push(() => http.stop());
    const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^mayfly_test_things_total 2$/m);
    expect(text).toMatch(/^mayfly_test_process_cpu_user_seconds_total /m);
    expect((await fetch(`http://127.0.0.1:${http.port}/alive`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${http.port}/live`)).status).toBe(404);
  });
});

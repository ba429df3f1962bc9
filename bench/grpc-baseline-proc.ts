/**
 * @module bench/grpc-baseline-proc
 *
 * The baseline for the agent's first-response latency (bench/agent): a bare grpc-js server
 * in its own process, on a Unix socket, whose FetchX509SVID checks the security header and
 * writes one fixed, already-encoded response — the same bytes the agent was serving — and
 * keeps the stream open. No attestation, no cache, no Mayfly code on the call path: what
 * is left is gRPC over HTTP/2 on this machine at this moment. The bench times it with the
 * same client, interleaved with the agent's calls, so both see the same load.
 * Started with `fork` (advanced serialisation): argv[2] = socket path; the first IPC message
 * `{ type: 'response', bytes }` sets the response; answers `{ type: 'ready' }` once
 * listening; `{ type: 'stop' }` exits 0.
 */
import * as grpc from '@grpc/grpc-js';
import { workloadServiceDefinition } from '../src/wire/workload/proto.js';

async function main(): Promise<void> {
  const socketPath = process.argv[2];
  if (socketPath === undefined) throw new TypeError('usage: grpc-baseline-proc <socketPath>');
  const bytes = await new Promise<Buffer>((resolve) => {
    process.once('message', (m: { type?: string; bytes?: Uint8Array }) => {
      if (m.type === 'response' && m.bytes !== undefined) resolve(Buffer.from(m.bytes));
    });
  });
  const def = workloadServiceDefinition();
  const fetch = def.FetchX509SVID as grpc.MethodDefinition<unknown, unknown>;
  // The response is written as the bytes themselves, like the agent's encode-once path.
  const service: grpc.ServiceDefinition = { FetchX509SVID: { ...fetch, responseSerialize: (v: unknown) => v as Buffer } };
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.addService(service, {
    FetchX509SVID: (call: grpc.ServerWritableStream<unknown, Buffer>) => {
      if (call.metadata.get('workload.spiffe.io')[0] !== 'true') {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing' });
        return;
      }
      call.write(bytes);
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  process.send?.({ type: 'ready' });
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'stop') return;
    server.forceShutdown();
    process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

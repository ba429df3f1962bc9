/**
 * wire/server/codecs against the `.proto` it was built from: `proto/server.json` is what
 * protobufjs makes of `proto/server.proto` today (a stale descriptor fails here), and every
 * method's codec speaks the bytes and shapes of proto-loader's (wire/server/definition),
 * which the server and the agent use.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { serverApiDescriptorFile, serverApiMethodCodec } from './codecs.js';
import { SERVER_API_PACKAGE, SERVER_API_SERVICES, serverApiPackageDefinition } from './definition.js';

const PROTO = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'proto', 'server.proto');

interface LoaderMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (v: unknown) => Buffer;
  requestDeserialize: (b: Buffer) => unknown;
  responseSerialize: (v: unknown) => Buffer;
  responseDeserialize: (b: Buffer) => unknown;
}

function loaderMethods(service: string): Record<string, LoaderMethod> {
  return serverApiPackageDefinition()[`${SERVER_API_PACKAGE}.${service}`] as unknown as Record<string, LoaderMethod>;
}

describe('server API codecs', () => {
  it('proto/server.json is the descriptor of proto/server.proto (regenerate it when this fails)', () => {
    const fresh = new protobuf.Root().loadSync(PROTO, { keepCase: true }).toJSON();
    const committed = JSON.parse(readFileSync(serverApiDescriptorFile(), 'utf8')) as unknown;
    expect(
      committed,
      "proto/server.json is stale: run node -e \"const pb=require('protobufjs');require('fs').writeFileSync('proto/server.json',JSON.stringify(new pb.Root().loadSync('proto/server.proto',{keepCase:true}).toJSON(),null,1)+'\\n')\"",
    ).toEqual(JSON.parse(JSON.stringify(fresh)));
  });

  it('every method has proto-loader\'s path, streaming flags and empty-message shapes', () => {
    let count = 0;
    for (const service of SERVER_API_SERVICES) {
      for (const [name, loader] of Object.entries(loaderMethods(service))) {
        const codec = serverApiMethodCodec(service, name);
        expect(codec.path).toBe(loader.path);
        expect([codec.requestStream, codec.responseStream]).toEqual([loader.requestStream, loader.responseStream]);
        expect(codec.responseDeserialize(Buffer.alloc(0))).toEqual(loader.responseDeserialize(Buffer.alloc(0)));
        expect(codec.requestSerialize({})).toEqual(loader.requestSerialize({}));
        count++;
      }
    }
    expect(count).toBeGreaterThan(30);
  });

  it('an entry request and answer cross between the two codecs unchanged', () => {
    const entry = {
      id: 'e1', spiffe_id: 'spiffe://td/w', parent_id: 'spiffe://td/p', selectors: [{ type: 'unix', value: 'uid:1' }],
      x509_svid_ttl: 3600, jwt_svid_ttl: 300, dns_names: ['a.example'], federates_with: ['other.example'], admin: true,
      downstream: false, hint: 'h', expires_at: 1_900_000_000, revision: 7, created_at: 1_800_000_000, owner: 'team-a', labels: { env: 'prod' }, purpose: 'why',
    };
    const create = serverApiMethodCodec('Entry', 'BatchCreateEntry');
    const loader = loaderMethods('Entry')['BatchCreateEntry'];
    if (loader === undefined) throw new Error('proto-loader has no Entry.BatchCreateEntry');
    const sent = create.requestSerialize({ entries: [entry] });
    expect(loader.requestDeserialize(sent)).toEqual({ entries: [entry] });
    const answer = { results: [{ status: { code: 6, message: 'exists' }, entry }] };
    expect(create.responseDeserialize(loader.responseSerialize(answer))).toEqual(loader.responseDeserialize(loader.responseSerialize(answer)));
    expect(create.responseDeserialize(loader.responseSerialize(answer))).toEqual(answer);
  });

  it('an enum travels by name', () => {
    const loader = loaderMethods('Health')['Check'];
    if (loader === undefined) throw new Error('proto-loader has no Health.Check');
    expect(serverApiMethodCodec('Health', 'Check').responseDeserialize(loader.responseSerialize({ status: 'SERVING' }))).toEqual({ status: 'SERVING' });
  });

  it('an unknown method is a TypeError', () => {
    expect(() => serverApiMethodCodec('Entry', 'NoSuchMethod')).toThrow(TypeError);
  });
});

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

  it('every method speaks proto-loader\'s bytes and shapes on generated messages, both ways', () => {
    const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
    root.resolveAll();
    const rand = seeded(18);
    let checked = 0;
    for (const service of SERVER_API_SERVICES) {
      const svc = root.lookupService(`${SERVER_API_PACKAGE}.${service}`);
      for (const [name, loader] of Object.entries(loaderMethods(service))) {
        const codec = serverApiMethodCodec(service, name);
        const m = svc.methods[name];
        if (m?.resolvedRequestType == null || m.resolvedResponseType == null) throw new Error(`unresolved ${service}.${name}`);
        for (let i = 0; i < 8; i++) {
          const request = generate(m.resolvedRequestType, rand, 0);
          expect(codec.requestSerialize(request), `${service}.${name} request #${i}`).toEqual(loader.requestSerialize(request));
          const response = generate(m.resolvedResponseType, rand, 0);
          const bytes = loader.responseSerialize(response);
          expect(codec.responseDeserialize(bytes), `${service}.${name} response #${i}`).toEqual(loader.responseDeserialize(bytes));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(240);
  });

  it('hostile bytes are refused, never read past the end', () => {
    const show = serverApiMethodCodec('Entry', 'ListEntries');
    const good = loaderMethods('Entry')['ListEntries']?.responseSerialize({ entries: [{ id: 'e', spiffe_id: 'spiffe://td/w', selectors: [{ type: 'unix', value: 'uid:1' }] }] });
    if (good === undefined) throw new Error('proto-loader has no Entry.ListEntries');
    for (let cut = 1; cut < good.length; cut++) {
      // Every proper prefix ends inside a length-delimited field or a varint.
      expect(() => show.responseDeserialize(good.subarray(0, cut)), `prefix of ${cut} bytes`).toThrow();
    }
    expect(() => show.responseDeserialize(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]))).toThrow(RangeError);
    expect(() => show.responseDeserialize(Buffer.from([0x0c]))).toThrow(/end group/);
    expect(() => show.responseDeserialize(Buffer.from([0x08, 0x01]))).toThrow(/wire type/);
    expect(() => show.responseDeserialize(Buffer.from([0x0f]))).toThrow(/wire type/);
    // Unknown fields of every wire type are skipped, as protobufjs does.
    const unknown = Buffer.concat([Buffer.from([0xf8, 0x07, 0x01, 0xf9, 0x07]), Buffer.alloc(8), Buffer.from([0xfd, 0x07]), Buffer.alloc(4), Buffer.from([0xfa, 0x07, 0x01, 0x00])]);
    expect(show.responseDeserialize(unknown)).toEqual(loaderMethods('Entry')['ListEntries']?.responseDeserialize(unknown));
  });
});

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS = ['', 'a', 'spiffe://td/w', 'ünïcødé ✓', '__proto__', 'x'.repeat(300)];

function scalar(type: string, rand: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  switch (type) {
    case 'string':
      return pick(WORDS);
    case 'bytes':
      return Buffer.from(pick(WORDS.slice(1)), 'utf8');
    case 'bool':
      return rand() < 0.5;
    case 'int32':
      return pick([0, 1, 127, 128, 300, 2_147_483_647, -1, -2_147_483_648]);
    case 'int64':
      return pick([0, 1, 3600, 1_900_000_000, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER, -1, -(2 ** 33)]);
    default:
      throw new Error(`no generator for ${type}`);
  }
}

function value(field: protobuf.Field, rand: () => number, depth: number): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) {
    const names = Object.keys(t.values);
    return names[Math.floor(rand() * names.length)];
  }
  if (t instanceof protobuf.Type) return generate(t, rand, depth + 1);
  return scalar(field.type, rand);
}

/** A message of `type` with each field present or absent at random (zero values included), nested three deep. */
function generate(type: protobuf.Type, rand: () => number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofMembers = new Set(type.oneofsArray.flatMap((o) => o.fieldsArray.map((f) => f.name)));
  for (const o of type.oneofsArray) {
    if (rand() < 0.3) continue;
    const f = o.fieldsArray[Math.floor(rand() * o.fieldsArray.length)];
    if (f !== undefined) out[f.name] = value(f.resolve(), rand, depth);
  }
  for (const field of type.fieldsArray) {
    const f = field.resolve();
    if (oneofMembers.has(f.name) || rand() < 0.25) continue;
    if (f.resolvedType instanceof protobuf.Type && depth >= 3) continue;
    if (f instanceof protobuf.MapField) {
      const m: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 3); i > 0; i--) m[`k${i}${String(scalar('string', rand)).slice(0, 4)}`] = scalar(f.type, rand);
      out[f.name] = m;
    } else if (f.repeated) {
      out[f.name] = Array.from({ length: Math.floor(rand() * 3) }, () => value(f, rand, depth));
    } else {
      out[f.name] = value(f, rand, depth);
    }
  }
  return out;
}

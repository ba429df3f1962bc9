/**
 * wire/spire/codecs against the `.proto` files it was built from: `proto/spire.json` is what
 * protobufjs makes of them today (a stale descriptor fails here), every method has
 * proto-loader's path (wire/spire/definition, which the server serves), and answers the
 * server encodes decode as SPIRE's CLI prints them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { SPIRE_CLIENT_PROTO_FILES, SPIRE_CLIENT_SERVICES, spireApiDescriptorFile, spireApiMethodCodec, type SpireClientService } from './codecs.js';
import { spireApiServiceDefinition, spireProtoRoot } from './definition.js';

interface LoaderMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize: (b: Buffer) => unknown;
  responseSerialize: (v: unknown) => Buffer;
}

const loader = (service: SpireClientService, method: string): LoaderMethod => {
  const m = (spireApiServiceDefinition(service) as unknown as Record<string, LoaderMethod>)[method];
  if (m === undefined) throw new Error(`proto-loader has no ${service}.${method}`);
  return m;
};

const REGENERATE = `node -e "const pb=require('protobufjs'),p=require('path');const r=new pb.Root();r.resolvePath=(o,t)=>t.startsWith('google/protobuf/')?t:p.join('proto',t);r.loadSync(${JSON.stringify(SPIRE_CLIENT_PROTO_FILES)},{keepCase:true});require('fs').writeFileSync('proto/spire.json',JSON.stringify(r.toJSON(),null,1)+'\\n')"`;

describe('SPIRE API client codecs', () => {
  it('proto/spire.json is the descriptor of proto/spire/api (regenerate it when this fails)', () => {
    const fresh = new protobuf.Root();
    fresh.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(spireProtoRoot(), target));
    fresh.loadSync([...SPIRE_CLIENT_PROTO_FILES], { keepCase: true });
    const committed = JSON.parse(readFileSync(spireApiDescriptorFile(), 'utf8')) as unknown;
    expect(committed, `proto/spire.json is stale: run ${REGENERATE}`).toEqual(JSON.parse(JSON.stringify(fresh.toJSON())));
  });

  it("every method has proto-loader's path and streaming flags", () => {
    let count = 0;
    for (const service of Object.keys(SPIRE_CLIENT_SERVICES) as SpireClientService[]) {
      for (const [name, m] of Object.entries(spireApiServiceDefinition(service) as unknown as Record<string, LoaderMethod>)) {
        const codec = spireApiMethodCodec(service, name);
        expect(codec.path).toBe(m.path);
        expect([codec.requestStream, codec.responseStream]).toEqual([m.requestStream, m.responseStream]);
        count++;
      }
    }
    expect(count).toBeGreaterThan(20);
  });

  it('a ListAgents request reaches the server as sent, and its answer decodes as protojson', () => {
    const codec = spireApiMethodCodec('Agent', 'ListAgents');
    const l = loader('Agent', 'ListAgents');
    const sent = codec.requestSerialize({ filter: { by_banned: { value: false }, by_selector_match: { selectors: [{ type: 'a', value: 'b' }], match: 'MATCH_ANY' } }, page_size: 1000 });
    expect(l.requestDeserialize(sent)).toMatchObject({ filter: { by_banned: { value: false }, by_can_reattest: null, by_selector_match: { selectors: [{ type: 'a', value: 'b' }], match: 'MATCH_ANY' } }, page_size: 1000 });
    const agent = { id: { trust_domain: 'td', path: '/spire/agent/x' }, attestation_type: 'join_token', x509svid_serial_number: '12', x509svid_expires_at: 1_900_000_000, selectors: [], banned: false, can_reattest: true };
    const decoded = codec.responseDeserialize(l.responseSerialize({ agents: [agent, { id: null }], next_page_token: '' }));
    expect(decoded).toEqual({
      agents: [
        { ...agent, x509svid_expires_at: '1900000000' },
        { id: null, attestation_type: '', x509svid_serial_number: '', x509svid_expires_at: '0', selectors: [], banned: false, can_reattest: false },
      ],
      next_page_token: '',
    });
  });

  it('an unknown method or service is a TypeError', () => {
    expect(() => spireApiMethodCodec('Agent', 'NoSuchMethod')).toThrow(TypeError);
    expect(() => spireApiMethodCodec('Nope' as SpireClientService, 'ListAgents')).toThrow(TypeError);
  });
});

import { describe, expect, it } from 'vitest';
import { workloadPackageDefinition, workloadServiceDefinition } from './proto.js';
import { toStruct, toValue, fromStruct } from './struct.js';

/** name → [field name, number, label, type] as the SPIFFE standard defines them. */
const CONTRACT: Record<string, Array<[string, number, string, string]>> = {
  X509SVIDRequest: [],
  X509SVIDResponse: [
    ['svids', 1, 'LABEL_REPEATED', 'TYPE_MESSAGE'],
    ['crl', 2, 'LABEL_REPEATED', 'TYPE_BYTES'],
    ['federated_bundles', 3, 'LABEL_REPEATED', 'TYPE_MESSAGE'], // map<string, bytes>
  ],
  X509SVID: [
    ['spiffe_id', 1, 'LABEL_OPTIONAL', 'TYPE_STRING'],
    ['x509_svid', 2, 'LABEL_OPTIONAL', 'TYPE_BYTES'],
    ['x509_svid_key', 3, 'LABEL_OPTIONAL', 'TYPE_BYTES'],
    ['bundle', 4, 'LABEL_OPTIONAL', 'TYPE_BYTES'],
    ['hint', 5, 'LABEL_OPTIONAL', 'TYPE_STRING'],
  ],
  X509BundlesRequest: [],
  X509BundlesResponse: [
    ['crl', 1, 'LABEL_REPEATED', 'TYPE_BYTES'],
    ['bundles', 2, 'LABEL_REPEATED', 'TYPE_MESSAGE'],
  ],
  JWTSVIDRequest: [
    ['audience', 1, 'LABEL_REPEATED', 'TYPE_STRING'],
    ['spiffe_id', 2, 'LABEL_OPTIONAL', 'TYPE_STRING'],
  ],
  JWTSVIDResponse: [['svids', 1, 'LABEL_REPEATED', 'TYPE_MESSAGE']],
  JWTSVID: [
    ['spiffe_id', 1, 'LABEL_OPTIONAL', 'TYPE_STRING'],
    ['svid', 2, 'LABEL_OPTIONAL', 'TYPE_STRING'],
    ['hint', 3, 'LABEL_OPTIONAL', 'TYPE_STRING'],
  ],
  JWTBundlesRequest: [],
  JWTBundlesResponse: [['bundles', 1, 'LABEL_REPEATED', 'TYPE_MESSAGE']],
  ValidateJWTSVIDRequest: [
    ['audience', 1, 'LABEL_OPTIONAL', 'TYPE_STRING'],
    ['svid', 2, 'LABEL_OPTIONAL', 'TYPE_STRING'],
  ],
  ValidateJWTSVIDResponse: [
    ['spiffe_id', 1, 'LABEL_OPTIONAL', 'TYPE_STRING'],
    ['claims', 2, 'LABEL_OPTIONAL', 'TYPE_MESSAGE'],
  ],
};

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

describe('proto/workload.proto', () => {
  it('has the standard messages with the standard field numbers, and nothing in a package', () => {
    const def = workloadPackageDefinition();
    for (const [name, fields] of Object.entries(CONTRACT)) {
      const msg = def[name] as { type: { field: FieldDescriptor[] } } | undefined;
      expect(msg, name).toBeDefined();
      expect(msg!.type.field.map((f) => [f.name, f.number, f.label, f.type]), name).toEqual(fields);
    }
    const claims = (def.ValidateJWTSVIDResponse as { type: { field: FieldDescriptor[] } }).type.field[1]!;
    expect(claims.typeName).toBe('google.protobuf.Struct');
    // Top-level names only: a `package` line would have prefixed them all.
    expect(Object.keys(def).filter((k) => !k.startsWith('google.')).sort()).toEqual([...Object.keys(CONTRACT), 'SpiffeWorkloadAPI'].sort());
  });

  it('serves the five RPCs at /SpiffeWorkloadAPI/<Rpc> with the standard streaming shape', () => {
    const svc = workloadServiceDefinition();
    const shape = Object.fromEntries(
      Object.entries(svc).map(([name, m]) => [name, [m.path, m.requestStream, m.responseStream]]),
    );
    expect(shape).toEqual({
      FetchX509SVID: ['/SpiffeWorkloadAPI/FetchX509SVID', false, true],
      FetchX509Bundles: ['/SpiffeWorkloadAPI/FetchX509Bundles', false, true],
      FetchJWTSVID: ['/SpiffeWorkloadAPI/FetchJWTSVID', false, false],
      FetchJWTBundles: ['/SpiffeWorkloadAPI/FetchJWTBundles', false, true],
      ValidateJWTSVID: ['/SpiffeWorkloadAPI/ValidateJWTSVID', false, false],
    });
  });

  it('encodes claims as a Struct that decodes back to the same JSON', () => {
    const svc = workloadServiceDefinition();
    const m = svc.ValidateJWTSVID!;
    const claims = { sub: 'spiffe://td/w', aud: ['a', 'b'], exp: 1.5e9, ok: false, none: null, deep: { l: [[1], {}] } };
    const bytes = m.responseSerialize({ spiffe_id: 'spiffe://td/w', claims: toStruct(claims) });
    const back = m.responseDeserialize(bytes) as { spiffe_id: string; claims: Parameters<typeof fromStruct>[0] };
    expect(back.spiffe_id).toBe('spiffe://td/w');
    expect(fromStruct(back.claims)).toEqual(claims);
  });

  it('Struct conversion refuses values JSON cannot hold and drops undefined keys', () => {
    expect(() => toValue(Number.NaN)).toThrow(TypeError);
    expect(() => toValue(() => 1)).toThrow(TypeError);
    expect(toStruct({ a: undefined, b: 1 })).toEqual({ fields: { b: { numberValue: 1 } } });
    expect(toValue([undefined])).toEqual({ listValue: { values: [{ nullValue: 'NULL_VALUE' }] } });
  });
});

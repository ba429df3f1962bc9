import { describe, expect, it } from 'vitest';
import { decodeHealthCheckRequest, encodeHealthCheckResponse, healthServiceDefinition, ServingStatus } from './health.js';

describe('grpc.health.v1 messages', () => {
  it('decodes the service name and skips unknown fields of every wire type', () => {
    expect(decodeHealthCheckRequest(Buffer.alloc(0))).toEqual({ service: '' });
    const svc = Buffer.from('SpiffeWorkloadAPI');
    const unknown = Buffer.from([0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x22, 2, 0x61, 0x62]);
    expect(decodeHealthCheckRequest(Buffer.concat([unknown, Buffer.from([0x0a, svc.length]), svc]))).toEqual({ service: 'SpiffeWorkloadAPI' });
  });

  it('refuses malformed and oversized requests', () => {
    expect(() => decodeHealthCheckRequest(Buffer.from([0x0a, 5, 0x61]))).toThrow(/truncated/);
    expect(() => decodeHealthCheckRequest(Buffer.from([0x0b]))).toThrow(/wire type 3/);
    expect(() => decodeHealthCheckRequest(Buffer.from([0x08, 0x80]))).toThrow(/varint/);
    expect(() => decodeHealthCheckRequest(Buffer.alloc(2048))).toThrow(/at most 1024/);
  });

  it('encodes each status as protobuf does (UNKNOWN is the empty message) and decodes it back', () => {
    const def = healthServiceDefinition().Check!;
    for (const status of Object.values(ServingStatus)) {
      const bytes = encodeHealthCheckResponse({ status });
      expect(bytes).toEqual(status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]));
      expect(def.responseDeserialize(bytes)).toEqual({ status });
    }
  });
});

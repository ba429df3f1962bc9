import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GRPC_CODE_NAMES, grpcCodeName } from './grpc-code-name.js';

describe('grpcCodeName', () => {
  it("names every code as grpc-js's status enum does, and an unknown number as itself", () => {
    const fromGrpc = Object.entries(status).filter(([, v]) => typeof v === 'number');
    expect(fromGrpc).toHaveLength(GRPC_CODE_NAMES.length);
    for (const [name, code] of fromGrpc) expect(grpcCodeName(code as number)).toBe(name);
    expect(grpcCodeName(99)).toBe('99');
    expect(grpcCodeName(-1)).toBe('-1');
  });
});

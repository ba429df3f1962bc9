/**
 * Mayfly's restatement of SPIRE's server API (`proto/spire/`) against the published protos
 * of `github.com/spiffe/spire-api-sdk` at the version SPIRE v1.13.3 is built with, fetched
 * from the Go module proxy with `go mod download`: every package, service, RPC, message,
 * enum, field name, number, type and label must be the same, so SPIRE's binaries and ours
 * read each other's bytes. A missing `go` or module fails the test (never skips).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { spireProtoRoot } from '../../../src/wire/spire/definition.js';

const MODULE = 'github.com/spiffe/spire-api-sdk@v1.2.5-0.20250109200630-101d5e7de758';
const SERVICES = ['agent', 'bundle', 'debug', 'entry', 'localauthority', 'logger', 'svid', 'trustdomain'];

function upstreamProtoDir(): string {
  const out = execFileSync('go', ['mod', 'download', '-json', MODULE], { encoding: 'utf8', timeout: 120_000 });
  const dir = (JSON.parse(out) as { Dir?: string }).Dir;
  if (dir === undefined) throw new Error(`go mod download ${MODULE} named no directory: ${out}`);
  return join(dir, 'proto');
}

function descriptor(protoDir: string): unknown {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/') || target.startsWith('/') ? target : join(protoDir, target));
  root.loadSync(SERVICES.map((s) => join(protoDir, `spire/api/server/${s}/v1/${s}.proto`)), { keepCase: true });
  root.resolveAll();
  return normalise(root.lookup('spire') as protobuf.Namespace);
}

/** Every type, enum and service under `ns`, with field and RPC types fully qualified. */
function normalise(ns: protobuf.NamespaceBase): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of ns.nestedArray) {
    if (n instanceof protobuf.Type) {
      out[n.fullName] = {
        fields: n.fieldsArray.map((f) => [f.id, f.name, f.resolvedType?.fullName ?? f.type, f.repeated, f instanceof protobuf.MapField ? f.keyType : '', f.partOf?.name ?? '']),
      };
    } else if (n instanceof protobuf.Enum) {
      out[n.fullName] = { values: n.values };
    } else if (n instanceof protobuf.Service) {
      out[n.fullName] = { methods: n.methodsArray.map((m) => [m.name, m.resolvedRequestType?.fullName, m.requestStream ?? false, m.resolvedResponseType?.fullName, m.responseStream ?? false]) };
    }
    if (n instanceof protobuf.Namespace || n instanceof protobuf.Type) Object.assign(out, normalise(n));
  }
  return out;
}

describe("proto/spire restates SPIRE's published server API", () => {
  it('has the same descriptors as spire-api-sdk', () => {
    const ours = descriptor(spireProtoRoot());
    const theirs = descriptor(upstreamProtoDir());
    expect(ours).toEqual(theirs);
    // The comparison sees real content: the Entry service and a known field number.
    expect(JSON.stringify(theirs)).toContain('SyncAuthorizedEntries');
  }, 150_000);
});

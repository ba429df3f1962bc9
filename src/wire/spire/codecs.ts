/**
 * @module wire/spire/codecs
 *
 * Client codecs of SPIRE's server API (the Agent, Bundle and Entry services of
 * `proto/spire/api/server/...`) without `@grpc/proto-loader` or the `.proto` parser:
 * `protobufjs/light` reads `proto/spire.json`, their JSON descriptor (regenerated and
 * compared by `codecs.test.ts`, so it cannot go stale). Mayfly's CLI calls SPIRE's API with
 * these where SPIRE's messages cover what a command does, as `wire/server/codecs` does for
 * Mayfly's own API (loading proto-loader would cost a CLI call ~100 ms, issue 18).
 *
 * Answers decode as SPIRE's CLI prints them (protojson with proto names and zero values):
 * snake_case fields, int64 as decimal strings, int32 as numbers, bytes as base64, enums by
 * name, repeated fields as arrays, unset messages as null. So a response is printed with
 * `-output json` as it is, with no conversion.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs/light.js';
import type * as Protobuf from 'protobufjs';

/** The SPIRE services `proto/spire.json` describes, by their fully qualified gRPC names. */
export const SPIRE_CLIENT_SERVICES = {
  Agent: 'spire.api.server.agent.v1.Agent',
  Bundle: 'spire.api.server.bundle.v1.Bundle',
  Entry: 'spire.api.server.entry.v1.Entry',
} as const;

export type SpireClientService = keyof typeof SPIRE_CLIENT_SERVICES;

/** The `.proto` files `proto/spire.json` is made from (relative to `proto/`). */
export const SPIRE_CLIENT_PROTO_FILES: readonly string[] = ['agent', 'bundle', 'entry'].map((f) => `spire/api/server/${f}/v1/${f}.proto`);

/** One unary method: its HTTP/2 path and its message codecs. */
export interface SpireApiMethodCodec {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

const PROTOJSON = { longs: String, bytes: String, enums: String, defaults: true, arrays: true } as const;

/** The path of `proto/spire.json` above this module. */
export function spireApiDescriptorFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto', 'spire.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find proto/spire.json above the wire/spire module; is the package installed completely?');
}

let root: Protobuf.Root | undefined;

function loadedRoot(): Protobuf.Root {
  if (root === undefined) {
    root = protobuf.Root.fromJSON(JSON.parse(readFileSync(spireApiDescriptorFile(), 'utf8')) as Protobuf.INamespace);
    root.resolveAll();
  }
  return root;
}

const codecs = new Map<string, SpireApiMethodCodec>();

/** The codec of SPIRE's `service.method`; TypeError when proto/spire.json has no such method. */
export function spireApiMethodCodec(service: SpireClientService, method: string): SpireApiMethodCodec {
  const key = `${service}.${method}`;
  const known = codecs.get(key);
  if (known !== undefined) return known;
  const full = SPIRE_CLIENT_SERVICES[service];
  const svc = full === undefined ? null : loadedRoot().lookup(full);
  const m = svc !== null && 'methods' in svc ? (svc as Protobuf.Service).methods[method] : undefined;
  if (m === undefined) throw new TypeError(`no method ${service}.${method} in proto/spire.json`);
  const req = m.resolvedRequestType;
  const res = m.resolvedResponseType;
  if (req === null || res === null) throw new TypeError(`method ${service}.${method} has unresolved message types`);
  const codec: SpireApiMethodCodec = {
    path: `/${full}/${method}`,
    requestStream: m.requestStream === true,
    responseStream: m.responseStream === true,
    requestSerialize: (value) => Buffer.from(req.encode(req.fromObject(value as Record<string, unknown>)).finish()),
    responseDeserialize: (bytes) => res.toObject(res.decode(bytes), PROTOJSON),
  };
  codecs.set(key, codec);
  return codec;
}

/**
 * @module wire/server/codecs
 *
 * The server API's message codecs without `@grpc/proto-loader`, the `.proto` parser or
 * protobufjs: `wire/server/pb-lite` reads `proto/server.json`, the JSON descriptor of `proto/server.proto`
 * (regenerated and compared by `codecs.test.ts`, so it cannot go stale). Messages have the
 * shapes of `wire/server/definition`: snake_case field names, bytes as Buffer, 64-bit
 * integers as Number, enums as their names, absent fields as zero values. The CLI's admin
 * client uses this: loading proto-loader and parsing the `.proto` cost a CLI call ~100 ms of
 * its start-up, and loading protobufjs/light and generating its codecs another ~25 ms (issue 18).
 *
 * The descriptor is found as `proto/server.proto` is (walking up from this module).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, encodeMessage, PbLiteRoot, type JsonNamespace } from './pb-lite.js';
import { SERVER_API_PACKAGE, type ServerApiService } from './definition-names.js';

/** One unary or streaming method: its HTTP/2 path and its message codecs. */
export interface ServerApiMethodCodec {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

/** The path of `proto/server.json` above this module. */
export function serverApiDescriptorFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto', 'server.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find proto/server.json above the wire/server module; is the package installed completely?');
}

let root: PbLiteRoot | undefined;

function loadedRoot(): PbLiteRoot {
  root ??= new PbLiteRoot(JSON.parse(readFileSync(serverApiDescriptorFile(), 'utf8')) as JsonNamespace);
  return root;
}

const codecs = new Map<string, ServerApiMethodCodec>();

/** The codec of `service.method`; TypeError when proto/server.proto has no such method. */
export function serverApiMethodCodec(service: ServerApiService, method: string): ServerApiMethodCodec {
  const key = `${service}.${method}`;
  const known = codecs.get(key);
  if (known !== undefined) return known;
  const m = loadedRoot().method(`${SERVER_API_PACKAGE}.${service}`, method);
  if (m === undefined) throw new TypeError(`no method ${service}.${method} in proto/server.proto`);
  const req = m.requestType;
  const res = m.responseType;
  const codec: ServerApiMethodCodec = {
    path: `/${SERVER_API_PACKAGE}.${service}/${method}`,
    requestStream: m.requestStream,
    responseStream: m.responseStream,
    requestSerialize: (value) => encodeMessage(req, value),
    responseDeserialize: (bytes) => decodeMessage(res, bytes),
  };
  codecs.set(key, codec);
  return codec;
}

/**
 * @module wire/spire/health
 *
 * `grpc.health.v1.Health/Check`'s two messages (grpc/health/v1/health.proto:
 * `HealthCheckRequest { string service = 1; }`, `HealthCheckResponse { ServingStatus status
 * = 1; }` with UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3), encoded by hand for
 * the server's admin socket, where `spire-server healthcheck -socketPath` calls it. Unknown
 * fields are skipped; a request is at most 1 KiB (a service name is short).
 */

export const GRPC_HEALTH_SERVICE = 'grpc.health.v1.Health';

export const HealthServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const MAX_REQUEST_BYTES = 1024;

function readVarint(buf: Buffer, at: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  throw new Error('malformed varint');
}

/** `HealthCheckRequest`: its `service` field. */
export function decodeHealthCheckRequest(buf: Buffer): { service: string } {
  if (buf.length > MAX_REQUEST_BYTES) throw new Error(`request of ${buf.length} bytes (at most ${MAX_REQUEST_BYTES})`);
  let service = '';
  let at = 0;
  while (at < buf.length) {
    const tag = readVarint(buf, at);
    at = tag.next;
    const wire = tag.value % 8;
    if (wire === 0) at = readVarint(buf, at).next;
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = readVarint(buf, at);
      const end = len.next + len.value;
      if (end > buf.length) throw new Error('truncated field');
      if (Math.floor(tag.value / 8) === 1) service = buf.toString('utf8', len.next, end);
      at = end;
    } else throw new Error(`unsupported wire type ${wire}`);
    if (at > buf.length) throw new Error('truncated field');
  }
  return { service };
}

/** `HealthCheckResponse` (status 0 is the proto3 default: no bytes). */
export function encodeHealthCheckResponse(res: { status: number }): Buffer {
  return res.status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, res.status]);
}

export function encodeHealthCheckRequest(req: { service: string }): Buffer {
  const s = Buffer.from(req.service, 'utf8');
  if (s.length === 0) return Buffer.alloc(0);
  if (s.length > 127) throw new TypeError('service name too long');
  return Buffer.concat([Buffer.from([0x0a, s.length]), s]);
}

export function decodeHealthCheckResponse(buf: Buffer): { status: number } {
  return { status: buf.length >= 2 && buf[0] === 0x08 ? (buf[1] as number) : 0 };
}

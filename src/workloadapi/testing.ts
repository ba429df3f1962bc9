/**
 * @module workloadapi/testing
 *
 * For tests only: raw HTTP/2 frames as a client writes them (RFC 9113 §4.1: 24-bit length,
 * type, flags, 31-bit stream identifier, payload), to drive the endpoint, the `:authority`
 * rewriter and the first-request sniffer byte by byte.
 */

/** One HTTP/2 frame: the 9-octet header followed by `payload`. */
export function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

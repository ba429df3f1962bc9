/**
 * @module wire/workload/messages
 *
 * Hand-written TypeScript shapes of the Workload API messages, as `@grpc/proto-loader`
 * produces and accepts them with `keepCase: true`, `bytes: Buffer`, `defaults: true`
 * (see `proto.ts`): field names are the proto's snake_case names; `bytes` are `Buffer`s;
 * maps are plain objects. The exception is `google.protobuf.Struct`, which protobufjs
 * defines built-in with camelCase field names (`numberValue`, ...).
 */

export type X509SVIDRequest = Record<string, never>;

export interface X509SVID {
  /** Equals the leaf certificate's URI SAN. */
  spiffe_id: string;
  /** DER certificates concatenated: leaf first, then intermediates, never the root. */
  x509_svid: Buffer;
  /** Unencrypted PKCS#8 DER private key. */
  x509_svid_key: Buffer;
  /** The trust domain's root certificates, DER concatenated. */
  bundle: Buffer;
  hint: string;
}

export interface X509SVIDResponse {
  svids: X509SVID[];
  crl: Buffer[];
  /** Root certificates (DER concatenated) of federated trust domains, keyed by `spiffe://td`. */
  federated_bundles: Record<string, Buffer>;
}

export type X509BundlesRequest = Record<string, never>;

export interface X509BundlesResponse {
  crl: Buffer[];
  /** Root certificates (DER concatenated) keyed by `spiffe://td`, own trust domain included. */
  bundles: Record<string, Buffer>;
}

export interface JWTSVIDRequest {
  audience: string[];
  /** Empty: one JWT-SVID per identity of the caller. */
  spiffe_id: string;
}

export interface JWTSVID {
  spiffe_id: string;
  /** JWS compact serialization. */
  svid: string;
  hint: string;
}

export interface JWTSVIDResponse {
  svids: JWTSVID[];
}

export type JWTBundlesRequest = Record<string, never>;

export interface JWTBundlesResponse {
  /** JWKS JSON bytes keyed by `spiffe://td`. */
  bundles: Record<string, Buffer>;
}

export interface ValidateJWTSVIDRequest {
  audience: string;
  svid: string;
}

export interface ValidateJWTSVIDResponse {
  spiffe_id: string;
  claims: Struct;
}

/** `google.protobuf.NullValue`, as an enum name (`enums: String`) or its number. */
export type NullValue = 'NULL_VALUE' | 0;

/** `google.protobuf.Value`: exactly one of the kinds is set. */
export type Value =
  | { nullValue: NullValue; kind?: 'nullValue' }
  | { numberValue: number; kind?: 'numberValue' }
  | { stringValue: string; kind?: 'stringValue' }
  | { boolValue: boolean; kind?: 'boolValue' }
  | { structValue: Struct; kind?: 'structValue' }
  | { listValue: ListValue; kind?: 'listValue' };

/** `google.protobuf.Struct`. */
export interface Struct {
  fields: Record<string, Value>;
}

/** `google.protobuf.ListValue`. */
export interface ListValue {
  values: Value[];
}

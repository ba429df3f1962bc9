/**
 * @module wire/server/pb-lite-schema
 *
 * The message types of a protobufjs JSON descriptor (`proto/server.json`), resolved for
 * `wire/server/pb-lite`: each message's fields in field-number order with their scalar,
 * enum or message type, map key type and oneof. A type name resolves as protoc resolves it
 * (innermost scope first); an unknown or unsupported type is a TypeError when the method
 * using it is first looked up.
 */

/** The parts of a protobufjs JSON descriptor this codec reads. */
export interface JsonNamespace {
  nested?: Record<string, JsonNamespace & { fields?: Record<string, JsonField>; values?: Record<string, number>; oneofs?: Record<string, { oneof: string[] }>; methods?: Record<string, JsonMethod> }>;
}
export interface JsonField {
  type: string;
  id: number;
  rule?: string;
  keyType?: string;
}
export interface JsonMethod {
  requestType: string;
  responseType: string;
  requestStream?: boolean;
  responseStream?: boolean;
}

export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64';
export const SCALARS: ReadonlySet<string> = new Set<Scalar>(['string', 'bytes', 'bool', 'int32', 'int64']);

export interface EnumType {
  readonly kind: 'enum';
  readonly byName: ReadonlyMap<string, number>;
  readonly byNumber: ReadonlyMap<number, string>;
  readonly defaultName: string;
}

export interface FieldInfo {
  readonly name: string;
  readonly id: number;
  readonly repeated: boolean;
  /** The map's key type when this is a map field. */
  readonly keyType: Scalar | undefined;
  readonly scalar: Scalar | undefined;
  readonly enumType: EnumType | undefined;
  readonly message: MessageType | undefined;
  readonly oneof: string | undefined;
}

export interface MessageType {
  readonly kind: 'message';
  readonly fullName: string;
  /** Sorted by field number. */
  fields: FieldInfo[];
  byId: Map<number, FieldInfo>;
}

export interface MethodInfo {
  readonly requestType: MessageType;
  readonly responseType: MessageType;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

type Node = NonNullable<JsonNamespace['nested']>[string];

/** The descriptor's services and message types, resolved. */
export class PbLiteRoot {
  readonly #nodes = new Map<string, Node>();
  readonly #types = new Map<string, MessageType | EnumType>();

  constructor(json: JsonNamespace) {
    const walk = (ns: JsonNamespace, prefix: string): void => {
      for (const [name, node] of Object.entries(ns.nested ?? {})) {
        const full = prefix === '' ? name : `${prefix}.${name}`;
        this.#nodes.set(full, node);
        walk(node, full);
      }
    };
    walk(json, '');
  }

  /** The method `service.method` (`service` fully qualified), or undefined. */
  method(service: string, method: string): MethodInfo | undefined {
    const m = this.#nodes.get(service)?.methods?.[method];
    if (m === undefined) return undefined;
    const scope = service.split('.').slice(0, -1);
    return {
      requestType: this.#message(this.#resolve(m.requestType, scope)),
      responseType: this.#message(this.#resolve(m.responseType, scope)),
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
    };
  }

  /** The full name `ref` means inside `scope` (protobuf's innermost-scope-first rule). */
  #resolve(ref: string, scope: readonly string[]): string {
    if (ref.startsWith('.')) return ref.slice(1);
    for (let i = scope.length; i >= 0; i--) {
      const full = [...scope.slice(0, i), ref].join('.');
      if (this.#nodes.has(full)) return full;
    }
    throw new TypeError(`descriptor has no type ${ref} (from ${scope.join('.')})`);
  }

  #message(full: string): MessageType {
    const t = this.#type(full);
    if (t.kind !== 'message') throw new TypeError(`${full} is an enum, not a message`);
    return t;
  }

  #type(full: string): MessageType | EnumType {
    const known = this.#types.get(full);
    if (known !== undefined) return known;
    const node = this.#nodes.get(full);
    if (node?.values !== undefined) {
      const entries = Object.entries(node.values);
      const byNumber = new Map<number, string>();
      for (const [k, v] of entries) if (!byNumber.has(v)) byNumber.set(v, k);
      const t: EnumType = { kind: 'enum', byName: new Map(entries), byNumber, defaultName: byNumber.get(entries[0]?.[1] ?? 0) ?? '' };
      this.#types.set(full, t);
      return t;
    }
    if (node?.fields === undefined) throw new TypeError(`descriptor has no message or enum ${full}`);
    // Registered before its fields resolve, so recursive messages terminate.
    const t: MessageType = { kind: 'message', fullName: full, fields: [], byId: new Map() };
    this.#types.set(full, t);
    const oneofOf = new Map<string, string>();
    for (const [name, o] of Object.entries(node.oneofs ?? {})) for (const member of o.oneof) oneofOf.set(member, name);
    const scope = full.split('.');
    for (const [name, f] of Object.entries(node.fields)) {
      const scalar = SCALARS.has(f.type) ? (f.type as Scalar) : undefined;
      const ref = scalar === undefined ? this.#type(this.#resolve(f.type, scope)) : undefined;
      if (f.keyType !== undefined && !SCALARS.has(f.keyType)) throw new TypeError(`${full}.${name}: unsupported map key type ${f.keyType}`);
      if (!SCALARS.has(f.type) && ref === undefined) throw new TypeError(`${full}.${name}: unsupported type ${f.type}`);
      t.fields.push({
        name,
        id: f.id,
        repeated: f.rule === 'repeated',
        keyType: f.keyType as Scalar | undefined,
        scalar,
        enumType: ref?.kind === 'enum' ? ref : undefined,
        message: ref?.kind === 'message' ? ref : undefined,
        oneof: oneofOf.get(name),
      });
    }
    t.fields.sort((a, b) => a.id - b.id);
    for (const f of t.fields) t.byId.set(f.id, f);
    return t;
  }
}

/**
 * @module wire/workload/struct
 *
 * JSON values (JWT claims) to and from `google.protobuf.Struct`, in the object shape
 * protobufjs uses for its built-in `struct.proto` (camelCase kinds).
 */
import type { ListValue, Struct, Value } from './messages.js';

/** Converts one JSON value. `undefined`, functions and symbols have no JSON form: TypeError. */
export function toValue(v: unknown): Value {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError('a Struct cannot hold a non-finite number');
      return { numberValue: v };
    case 'bigint':
      return { numberValue: Number(v) };
    case 'object':
      if (Array.isArray(v)) return { listValue: { values: v.map((e) => toValue(e === undefined ? null : e)) } };
      return { structValue: toStruct(v as Record<string, unknown>) };
    default:
      throw new TypeError(`a Struct cannot hold a value of type ${typeof v}`);
  }
}

/** Converts a JSON object (e.g. JWT claims). Keys whose value is `undefined` are left out, as JSON.stringify does. */
export function toStruct(obj: Record<string, unknown>): Struct {
  const fields: Record<string, Value> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    fields[k] = toValue(v);
  }
  return { fields };
}

/** The JSON value a decoded `google.protobuf.Value` carries. */
export function fromValue(v: Value): unknown {
  if ('stringValue' in v) return v.stringValue;
  if ('numberValue' in v) return v.numberValue;
  if ('boolValue' in v) return v.boolValue;
  if ('structValue' in v) return fromStruct(v.structValue);
  if ('listValue' in v) return fromList(v.listValue);
  return null;
}

function fromList(l: ListValue): unknown[] {
  return (l.values ?? []).map(fromValue);
}

/** The JSON object a decoded `google.protobuf.Struct` carries. */
export function fromStruct(s: Struct): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = fromValue(v);
  return out;
}

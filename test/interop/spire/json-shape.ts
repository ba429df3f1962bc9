/** A JSON document's structure: every key kept, every value replaced by its JSON type (arrays keep their distinct element shapes). */
export function shape(v: unknown): unknown {
  if (Array.isArray(v)) {
    const shapes = v.map(shape);
    return shapes.filter((s, i) => shapes.findIndex((t) => JSON.stringify(t) === JSON.stringify(s)) === i);
  }
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]));
  return v === null ? 'null' : typeof v;
}

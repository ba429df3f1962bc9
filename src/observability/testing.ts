/**
 * @module observability/testing
 *
 * Reading a Prometheus text exposition in tests: one series' value, and the metric names
 * a `/metrics` page declares. Test support only (not in the published build).
 */

/** The value of one series (`name{labels}`) in a Prometheus text exposition; undefined when absent. */
export function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = (m[2] ?? '').split(',').filter((x) => x !== '').sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/** Every metric a page declares (`# TYPE <name> <type>`), with its type. */
export function declaredMetrics(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

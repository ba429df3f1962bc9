/**
 * @module server/timed-datastore
 *
 * The datastore as the server runs it, with every asynchronous call timed: each method
 * that returns a promise reports its name and how long the promise took to settle
 * (fulfilled or rejected) to a recorder (server/observability's datastore latency
 * histogram). Methods that return no promise (`watch`) pass through untimed. The wrapper
 * forwards by name, so a method added to `Datastore` is timed without a change here; the
 * operation label is a method name, so its values are bounded by the interface.
 */

/** Told of every finished datastore call. */
export interface DatastoreCallRecorder {
  datastoreCallEnded(operation: string, seconds: number): void;
}

function isPromise(v: unknown): v is Promise<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** `ds` with its calls timed; `now` gives milliseconds (monotonic is best; default `performance.now`). */
export function timedDatastore<D extends object>(ds: D, recorder: DatastoreCallRecorder, now: () => number = () => performance.now()): D {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(ds, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const cached = wrapped.get(prop);
      if (cached !== undefined) return cached;
      const operation = String(prop);
      const fn = value as (...args: unknown[]) => unknown;
      const timed = (...args: unknown[]): unknown => {
        const started = now();
        const out = fn.apply(target, args);
        if (!isPromise(out)) return out;
        const done = (): void => recorder.datastoreCallEnded(operation, Math.max(0, now() - started) / 1000);
        return out.then(
          (v) => {
            done();
            return v;
          },
          (err: unknown) => {
            done();
            throw err;
          },
        );
      };
      wrapped.set(prop, timed);
      return timed;
    },
  });
}

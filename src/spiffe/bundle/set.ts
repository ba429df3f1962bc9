/**
 * @module spiffe/bundle/set
 *
 * Bundles of several trust domains, keyed by trust domain name. Setting a bundle replaces
 * that trust domain's bundle whole: bundles of different trust domains are never merged.
 */
import { TrustDomain } from '../id.js';
import { Bundle } from './bundle.js';

export class BundleSet {
  readonly #byName = new Map<string, Bundle>();

  constructor(cfg: { bundles?: Iterable<Bundle> } = {}) {
    for (const b of cfg.bundles ?? []) this.set(b);
  }

  /** The bundle of `td` (a TrustDomain or its name), if any. */
  get(td: TrustDomain | string): Bundle | undefined {
    return this.#byName.get(typeof td === 'string' ? td : td.name);
  }

  has(td: TrustDomain | string): boolean {
    return this.#byName.has(typeof td === 'string' ? td : td.name);
  }

  /** Adds or replaces the bundle of `bundle.trustDomain`. */
  set(bundle: Bundle): this {
    if (!(bundle instanceof Bundle)) throw new TypeError('BundleSet holds Bundle objects');
    this.#byName.set(bundle.trustDomain.name, bundle);
    return this;
  }

  delete(td: TrustDomain | string): boolean {
    return this.#byName.delete(typeof td === 'string' ? td : td.name);
  }

  get size(): number {
    return this.#byName.size;
  }

  values(): IterableIterator<Bundle> {
    return this.#byName.values();
  }

  [Symbol.iterator](): IterableIterator<Bundle> {
    return this.#byName.values();
  }
}

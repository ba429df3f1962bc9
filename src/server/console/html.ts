/**
 * @module server/console/html
 *
 * The console's only way to make HTML: `escapeHtml` is the one escaping function and `html`
 * the one template helper. Every interpolated value is escaped unless it is already
 * `SafeHtml` made by `html` itself, so a page cannot forget to escape.
 *
 * Threat: stored XSS through registration data. Owners, labels, purposes, hints, SPIFFE ID
 * paths and selector values are written by admins (or scoped registrars) over the API and
 * shown to other admins here; a label `<script>…` or `" onmouseover=…` must render as text.
 * Values only ever land in element content or in double-quoted attributes, and the escaping
 * covers both (`& < > " '`). There is no `raw()`: markup comes only from template literals
 * in this folder's source.
 */

/** Markup produced by `html` (never by a caller's string). */
export class SafeHtml {
  readonly #text: string;
  private constructor(text: string) {
    this.#text = text;
  }
  /** @internal used by `html` only. */
  static of(text: string): SafeHtml {
    return new SafeHtml(text);
  }
  toString(): string {
    return this.#text;
  }
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof SafeHtml) return v.toString();
  if (Array.isArray(v)) return (v as readonly Value[]).map(render).join('');
  return escapeHtml(String(v));
}

/** Tagged template: the literal parts are markup, every value is escaped (SafeHtml and arrays of it pass as markup). */
export function html(strings: TemplateStringsArray, ...values: readonly Value[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return SafeHtml.of(out);
}

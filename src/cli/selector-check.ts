/**
 * @module cli/selector-check
 *
 * Warnings for selectors no built-in attestor produces. A registration entry whose
 * selector nobody emits is accepted by the server (SPIRE has attestors Mayfly lacks, and
 * plugins may add types) but matches nothing, which an operator learns only when a
 * workload gets no SVID. `entry create` therefore warns, on stderr, for a selector of a
 * type none of Mayfly's attestors uses, and for a built-in type with a kind of value its
 * attestor never emits (`unix:uids:1000`); the entry is still sent.
 *
 * The kinds are those the attestors emit: attestors/workload/unix/unix.ts,
 * attestors/workload/k8s/k8s.ts, attestors/node/k8s_psat/k8s_psat.ts,
 * attestors/node/x509pop/x509pop.ts and attestors/node/join_token/join_token.ts (named here, not imported, so the client commands
 * load no attestor code; selector-check.test.ts holds the two lists together).
 */
import type { Selector } from '../registration/selector.js';
import { closeMatches } from './flags.js';

/** Built-in selector types → the kinds of value (before the first ':') their attestor emits. */
export const BUILTIN_SELECTOR_KINDS: ReadonlyMap<string, readonly string[]> = new Map([
  ['unix', ['uid', 'user', 'gid', 'group', 'supplementary_gid', 'supplementary_group', 'path', 'sha256']],
  [
    'k8s',
    ['sa', 'ns', 'node-name', 'pod-uid', 'pod-name', 'pod-image-count', 'pod-init-image-count', 'pod-image', 'pod-init-image', 'pod-label', 'pod-owner', 'pod-owner-uid', 'container-name', 'container-image'],
  ],
  ['k8s_psat', ['cluster', 'agent_ns', 'agent_sa', 'agent_pod_name', 'agent_pod_uid', 'agent_node_name', 'agent_node_uid', 'agent_node_label', 'agent_pod_label']],
  ['join_token', ['sha256']],
  // subject:cn:<cn>, ca:fingerprint:<sha1>, serialnumber:<hex>, san:<key>:<value>
  ['x509pop', ['subject', 'ca', 'serialnumber', 'san']],
]);

function suggest(name: string, known: Iterable<string>): string {
  const near = closeMatches(name, known);
  return near.length > 0 ? ` (did you mean ${near.join(', ')}?)` : '';
}

/** One warning per selector no built-in attestor emits; `where` prefixes each (e.g. `entries[3]`). */
export function selectorWarnings(selectors: readonly Selector[], where = ''): string[] {
  const out: string[] = [];
  const at = where === '' ? '' : `${where}: `;
  for (const s of selectors) {
    const text = `${s.type}:${s.value}`;
    const kinds = BUILTIN_SELECTOR_KINDS.get(s.type);
    if (kinds === undefined) {
      out.push(
        `${at}selector ${text}: no built-in attestor emits type "${s.type}" (Mayfly's are ${[...BUILTIN_SELECTOR_KINDS.keys()].join(', ')})${suggest(s.type, BUILTIN_SELECTOR_KINDS.keys())}; the entry matches nothing unless a plugin emits it`,
      );
      continue;
    }
    const colon = s.value.indexOf(':');
    const kind = colon === -1 ? s.value : s.value.slice(0, colon);
    if (colon === -1 && kinds.includes(kind)) {
      out.push(`${at}selector ${text} has no value: write ${text}:<value>`);
    } else if (!kinds.includes(kind)) {
      out.push(`${at}selector ${text}: the ${s.type} attestor emits no "${kind}" selectors; it emits ${kinds.map((k) => `${s.type}:${k}:...`).join(', ')}${suggest(kind, kinds)}`);
    }
  }
  return out;
}

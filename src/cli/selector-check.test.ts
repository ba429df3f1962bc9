/**
 * Selector warnings on `entry create`: the built-in types are the attestors' own names,
 * what the real unix attestor emits for this process draws no warning, and mistakes get a
 * warning naming the fix.
 */
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { joinTokenSelector, JOIN_TOKEN_TYPE } from '../attestors/node/join_token/join_token.js';
import { K8S_PSAT_TYPE } from '../attestors/node/k8s_psat/payload.js';
import { makeNodePki, evidenceOf, answerWith } from '../attestors/node/x509pop/testing.js';
import { X509POP_TYPE, X509PopAttestor } from '../attestors/node/x509pop/x509pop.js';
import { TrustDomain } from '../spiffe/id.js';
import { K8S_SELECTOR_TYPE } from '../attestors/workload/k8s/k8s.js';
import { UnixWorkloadAttestor } from '../attestors/workload/unix/unix.js';
import { BUILTIN_SELECTOR_KINDS, selectorWarnings } from './selector-check.js';

describe('selectorWarnings', () => {
  it('knows the attestors by their own type names', () => {
    expect([...BUILTIN_SELECTOR_KINDS.keys()].sort()).toEqual(['unix', K8S_SELECTOR_TYPE, K8S_PSAT_TYPE, JOIN_TOKEN_TYPE, X509POP_TYPE].sort());
    expect(selectorWarnings([joinTokenSelector('some-token')])).toEqual([]);
  });

  it('says nothing for what the real unix attestor emits for this process (path and sha256 included)', async () => {
    const exe = statSync(`/proc/${process.pid}/exe`);
    const caller = { pid: process.pid, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, executable: `${exe.dev}:${exe.ino}` };
    const sels = await new UnixWorkloadAttestor({ discoverWorkloadPath: true }).attest(caller);
    expect(sels.map((x) => x.value.split(':')[0])).toEqual(expect.arrayContaining(['uid', 'gid', 'path', 'sha256']));
    expect(selectorWarnings(sels)).toEqual([]);
  });

  it('says nothing for what the real x509pop attestor emits', async () => {
    const pki = makeNodePki();
    const node = pki.node({ uris: ['x509pop://example.org/rack/r1'] });
    const res = await new X509PopAttestor({ caCertificates: [pki.root.certificate] }).attest(evidenceOf(pki, node), {
      trustDomain: TrustDomain.parse('example.org'),
      now: new Date(),
      challenge: (c) => answerWith(node.key, c),
    });
    expect(res.selectors.map((s) => s.value.split(':')[0])).toEqual(expect.arrayContaining(['subject', 'ca', 'serialnumber', 'san']));
    expect(selectorWarnings(res.selectors)).toEqual([]);
  });

  it('says nothing for selectors the attestors emit', () => {
    const ok = ['unix:uid:1000', 'unix:user:www', 'unix:sha256:ab', 'k8s:ns:default', 'k8s:pod-label:app:web', 'k8s_psat:cluster:prod', 'k8s_psat:agent_node_label:zone:a'];
    expect(selectorWarnings(ok.map((t) => ({ type: t.slice(0, t.indexOf(':')), value: t.slice(t.indexOf(':') + 1) })))).toEqual([]);
  });

  it('warns for an unknown type, an unknown kind and a missing value, with suggestions', () => {
    const w = selectorWarnings([
      { type: 'unx', value: 'uid:1' },
      { type: 'unix', value: 'uids:1' },
      { type: 'k8s', value: 'namespace:x' },
      { type: 'unix', value: 'uid' },
      { type: 'docker', value: 'label:a' },
    ], 'entries[2]');
    expect(w).toHaveLength(5);
    expect(w[0]).toMatch(/^entries\[2\]: selector unx:uid:1: no built-in attestor emits type "unx".*\(did you mean unix\?\)/);
    expect(w[1]).toMatch(/the unix attestor emits no "uids" selectors.*\(did you mean uid/);
    expect(w[2]).toMatch(/the k8s attestor emits no "namespace" selectors/);
    expect(w[3]).toMatch(/selector unix:uid has no value: write unix:uid:<value>/);
    expect(w[4]).toMatch(/no built-in attestor emits type "docker".*matches nothing unless a plugin emits it/);
  });
});

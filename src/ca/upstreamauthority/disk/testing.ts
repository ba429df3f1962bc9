/**
 * @module ca/upstreamauthority/disk/testing
 *
 * Conformance fixtures of `UpstreamAuthority "disk"`: an operator's CA written to files,
 * once as a root and once as an intermediate under a root given in `bundle_file_path`, and
 * configurations that do not hold together. Not for production use.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPkcs8Pem, generateKeyPair } from '../../../spiffe/keys.js';
import type { UpstreamAuthorityFixture } from '../../conformance.js';
import { writeOperatorCa, type OperatorCa } from '../../testing.js';
import { fixtureTempDir } from '../../../securefs/testing.js';

const TD = 'conformance.test';

function operatorCa(withIntermediate: boolean): OperatorCa {
  return writeOperatorCa(fixtureTempDir('mayfly-upstream-'), { now: new Date(Date.now() - 60_000), trustDomain: TD, withIntermediate });
}

const hcl = (cert: string, key: string, bundle?: string): string =>
  `cert_file_path = "${cert}"\nkey_file_path = "${key}"${bundle === undefined ? '' : `\nbundle_file_path = "${bundle}"`}`;

const refused: UpstreamAuthorityFixture['refused'] = {
  'a key that is not the certificate\'s': () => {
    const op = operatorCa(false);
    const other = join(op.certFile, '..', 'other.key');
    writeFileSync(other, exportPkcs8Pem(generateKeyPair('ec-p256').privateKey), { mode: 0o600 });
    return hcl(op.certFile, other);
  },
  'a certificate file that is not there': () => {
    const op = operatorCa(false);
    return hcl(join(op.certFile, '..', 'missing.crt'), op.keyFile);
  },
  'an intermediate without the root it chains to': () => {
    const op = operatorCa(true);
    return hcl(op.certFile, op.keyFile);
  },
};

const fixture = (label: string, withIntermediate: boolean): UpstreamAuthorityFixture => ({
  binary: 'server',
  kind: 'UpstreamAuthority',
  name: 'disk',
  label,
  trustDomain: TD,
  pluginData: () => {
    const op = operatorCa(withIntermediate);
    return withIntermediate ? hcl(op.certFile, op.keyFile, op.bundleFile) : hcl(op.certFile, op.keyFile);
  },
  deps: () => ({}),
  refused,
});

export const pluginFixtures = [fixture('root', false), fixture('intermediate', true)];

import { describe, expect, it } from 'vitest';
import { parseDurationSeconds, resolveServerConfig } from './config.js';
import { defaultSocketPath } from '../securefs/index.js';
import { parseConfigText, parseHcl } from '../config/hcl.js';

const SPIRE_CONF = `
# SPIRE's sample server.conf, near verbatim
server {
    bind_address = "0.0.0.0"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "./data/server"
    log_level = "DEBUG"
    ca_ttl = "168h"
    default_x509_svid_ttl = "48h"
    default_jwt_svid_ttl = "5m"
    ca_key_type = "ec-p384"
    jwt_key_type = "rsa-2048"
    ca_subject {
        country = ["US"],
        organization = ["SPIFFE"],
        common_name = "",
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./data/server/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "./data/server/keys.json"
        }
    }
    /* an upstream CA */
    UpstreamAuthority "disk" {
        plugin_data {
            key_file_path = "./conf/server/dummy_upstream_ca.key"
            cert_file_path = "./conf/server/dummy_upstream_ca.crt"
        }
    }
}

health_checks {
    listener_enabled = true
    bind_address = "0.0.0.0"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}
`;

describe('HCL subset', () => {
  it('parses blocks, labels, lists, numbers, booleans and comments into one tree', () => {
    const t = parseHcl('a = 1\nb = true // c\nc = [1, "x", [2]]\nblk "l1" "l2" { k = -2.5e1 }\nobj = { x = "y" }');
    expect(t).toEqual({ a: 1, b: true, c: [1, 'x', [2]], blk: { l1: { l2: { k: -25 } } }, obj: { x: 'y' } });
  });

  it('merges labelled blocks of one kind and refuses a key set twice', () => {
    expect(parseHcl('N "a" {}\nN "b" { x = 1 }')).toEqual({ N: { a: {}, b: { x: 1 } } });
    expect(() => parseHcl('a = 1\na = 2')).toThrow(/line 2.*a is set twice/);
    expect(() => parseHcl('N "a" {}\nN "a" {}')).toThrow(/set twice/);
  });

  it('names the line and column of syntax errors, and refuses interpolation and heredocs', () => {
    expect(() => parseHcl('server {\n  x = \n}')).toThrow(/line 3, column 1/);
    expect(() => parseHcl('a = "x')).toThrow(/unterminated string/);
    expect(() => parseHcl('a = "${env.X}"')).toThrow(/interpolation/);
    expect(() => parseHcl('a = <<EOF\nx\nEOF')).toThrow(/heredocs/);
    expect(() => parseHcl('a = bare')).toThrow(/bare word/);
    expect(() => parseHcl('server {')).toThrow(/missing '}'/);
  });

  it('bounds nesting depth and size', () => {
    expect(() => parseHcl('a = ' + '['.repeat(100) + ']'.repeat(100))).toThrow(/nested too deeply/);
    expect(() => parseHcl('#'.repeat(1024 * 1024 + 1))).toThrow(/larger than/);
  });

  it('reads JSON configs into the same shape', () => {
    expect(parseConfigText('{"server": {"trust_domain": "a.test"}}')).toEqual({ server: { trust_domain: 'a.test' } });
    expect(() => parseConfigText('{"server": ')).toThrow(/not valid JSON/);
  });
});

describe('server configuration', () => {
  it('runs with no file at all on safe defaults', () => {
    const s = resolveServerConfig(undefined);
    expect(s).toMatchObject({ trustDomain: 'example.org', dataDir: './.mayfly/server', socketPath: defaultSocketPath('server'), bindAddress: '127.0.0.1', bindPort: 8081 });
    expect(s.metrics).toEqual({ enabled: true, host: '127.0.0.1', port: 9988 });
    expect(s.health.enabled).toBe(false);
  });

  it("accepts SPIRE's sample server.conf and maps every core key", () => {
    const s = resolveServerConfig(parseHcl(SPIRE_CONF));
    expect(s).toMatchObject({
      trustDomain: 'example.org',
      bindAddress: '0.0.0.0',
      bindPort: 8081,
      dataDir: './data/server',
      logLevel: 'debug',
      caTtlSeconds: 168 * 3600,
      defaultX509SvidTtl: 48 * 3600,
      defaultJwtSvidTtl: 300,
      caKeyType: 'ec-p384',
      jwtKeyType: 'rsa-2048',
      caSubject: { country: 'US', organization: 'SPIFFE' },
      datastorePath: 'data/server/datastore',
      keyManager: { kind: 'disk', dataDir: './data/server' },
      upstream: { certFile: './conf/server/dummy_upstream_ca.crt', keyFile: './conf/server/dummy_upstream_ca.key' },
      nodeAttestors: ['join_token'],
      health: { enabled: true, host: '0.0.0.0', port: 8080, livePath: '/live', readyPath: '/ready' },
    });
    expect(s.notices.join()).toMatch(/connection_string is not used/);
  });

  it('maps DataStore "sql" with database_type "postgres" to the PostgreSQL datastore', () => {
    const conf = (data: string): string => `plugins { DataStore "sql" { plugin_data { database_type = "postgres" ${data} } } }`;
    const s = resolveServerConfig(parseHcl(conf('connection_string = "dbname=spire user=spire host=db sslmode=verify-full"')), {});
    expect(s.postgres).toEqual({ connectionString: 'dbname=spire user=spire host=db sslmode=verify-full' });
    expect(s.notices.join()).not.toMatch(/connection_string/);
    expect(resolveServerConfig(parseHcl(SPIRE_CONF), {}).postgres).toBeUndefined();
    expect(() => resolveServerConfig(parseHcl(conf('')), {})).toThrow(/connection_string is required/);
    expect(() => resolveServerConfig(parseHcl('plugins { DataStore "sql" { plugin_data { database_type = "mysql" } } }'), {})).toThrow(/"sqlite3" \(stored in LevelDB\) or "postgres"/);
  });

  it('lets flags override the file', () => {
    const s = resolveServerConfig(parseHcl(SPIRE_CONF), { trustDomain: 'other.test', bindPort: 0, socketPath: '/x.sock', logLevel: 'WARN' });
    expect(s).toMatchObject({ trustDomain: 'other.test', bindPort: 0, socketPath: '/x.sock', logLevel: 'warn' });
  });

  it('reports every unknown key and bad value together, by name', () => {
    const bad = parseHcl(`
      server { bind_prot = 1 trust_domain = "Bad Domain" ca_ttl = "-1h" ca_key_type = "rsa-512" }
      plugins { DataStore "postgres" {} KeyManager "disk" { plugin_data { keys_path = "k" extra = 1 } } }
      health_checks { bind_port = "99999" }
      extra_block { }`);
    let message = '';
    try {
      resolveServerConfig(bad);
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code?: string }).code).toBe('ERR_CONFIG_INVALID');
    }
    for (const part of ['server.bind_prot', 'extra_block', 'trust_domain', 'server.ca_ttl', 'ca_key_type', 'DataStore', 'plugin_data.extra', 'health_checks.bind_port']) {
      expect(message).toContain(part);
    }
    expect(message).not.toContain('\n');
  });

  it('parses Go durations and whole seconds only', () => {
    expect(parseDurationSeconds('1h30m')).toBe(5400);
    expect(parseDurationSeconds('90s')).toBe(90);
    expect(parseDurationSeconds('600')).toBe(600);
    expect(parseDurationSeconds(42)).toBe(42);
    expect(parseDurationSeconds('-5m')).toBe(-300);
    expect(parseDurationSeconds('1500ms')).toBeUndefined();
    expect(parseDurationSeconds('1d')).toBeUndefined();
    expect(parseDurationSeconds('h')).toBeUndefined();
  });
});

describe('resolveServerConfig: node attestors', () => {
  const conf = (attestors: string): string => `plugins {\n${attestors}\n}`;
  const psat = `NodeAttestor "k8s_psat" {
    plugin_data {
      clusters = {
        "prod" = {
          service_account_allow_list = ["mayfly:mayfly-agent"]
          allowed_node_label_keys = ["topology.kubernetes.io/zone"]
        }
      }
    }
  }`;
  const problemsOf = (text: string): string => {
    try {
      resolveServerConfig(parseConfigText(text));
    } catch (err) {
      return (err as Error).message;
    }
    return '';
  };

  it('reads k8s_psat plugin_data and keeps join_token available beside it', () => {
    const s = resolveServerConfig(parseConfigText(conf(psat)));
    expect(s.nodeAttestors).toEqual(['join_token', 'k8s_psat']);
    expect(s.k8sPsat).toEqual({ clusters: { prod: { serviceAccountAllowList: ['mayfly:mayfly-agent'], allowedNodeLabelKeys: ['topology.kubernetes.io/zone'] } } });
    expect(resolveServerConfig(undefined).k8sPsat).toBeUndefined();
  });

  it('disables join_token only when told to (enabled = false), and refuses disabling every attestor', () => {
    const s = resolveServerConfig(parseConfigText(conf(`${psat}\nNodeAttestor "join_token" { enabled = false }`)));
    expect(s.nodeAttestors).toEqual(['k8s_psat']);
    expect(problemsOf(conf('NodeAttestor "join_token" { enabled = false }'))).toMatch(/every node attestor is disabled/);
  });

  it('reports k8s_psat problems with the file\'s other problems', () => {
    const msg = problemsOf(`server { bind_prot = 1 }
plugins {
  NodeAttestor "k8s_psat" { plugin_data { clusters = { "prod" = { audience = ["x"] } } } }
}`);
    expect(msg).toContain('bind_prot');
    expect(msg).toContain('plugins.NodeAttestor.k8s_psat.plugin_data.clusters.prod.service_account_allow_list is required');
    expect(problemsOf(conf('NodeAttestor "k8s_psat" { plugin_data { clusterz = {} } }'))).toContain('unknown key plugins.NodeAttestor.k8s_psat.plugin_data.clusterz');
    // The attestor's own checks surface here too, not as a crash at start.
    expect(problemsOf(conf('NodeAttestor "k8s_psat" { plugin_data { clusters = { "prod" = { service_account_allow_list = ["no-colon"] } } } }'))).toMatch(
      /plugins\.NodeAttestor\.k8s_psat\.plugin_data: .*"no-colon" is not "namespace:serviceaccount"/,
    );
    expect(problemsOf(conf('NodeAttestor "x509pop" { plugin_data {} }'))).toContain('plugins.NodeAttestor.x509pop.plugin_data: one of ca_bundle_path or ca_bundle_paths must be configured');
    expect(problemsOf(conf('NodeAttestor "aws_iid" { plugin_data {} }'))).toMatch(/only "join_token", "k8s_psat" and "x509pop" are supported; got "aws_iid"/);
  });
});

describe('server logging keys (SPIRE spellings)', () => {
  it('reads log_format and log_file from the server block and refuses other formats', () => {
    const s = resolveServerConfig(parseHcl('server {\n trust_domain = "example.org"\n log_format = "TEXT"\n log_file = "/var/log/mayfly.log"\n}'));
    expect(s).toMatchObject({ logFormat: 'text', logFile: '/var/log/mayfly.log' });
    expect(() => resolveServerConfig(parseHcl('server {\n log_format = "xml"\n}'))).toThrow(/server\.log_format must be "json" or "text"/);
  });
});

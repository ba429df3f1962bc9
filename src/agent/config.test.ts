import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../config/hcl.js';
import { MayflyAgent } from './agent.js';
import { resolveAgentConfig, serverTargetsOf } from './config.js';

const k8sConf = `
agent {
  trust_domain = "example.org"
  server_address = "mayfly-server.mayfly.svc"
}
plugins {
  NodeAttestor "k8s_psat" {
    plugin_data {
      cluster = "prod"
      token_path = "/var/run/secrets/tokens/mayfly-agent"
    }
  }
  WorkloadAttestor "k8s" {
    plugin_data {
      kubelet_secure_port = "10250"
      node_name_env = "MY_NODE_NAME"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data { discover_workload_path = true }
  }
}
`;

describe('resolveAgentConfig', () => {
  it('defaults to join token node attestation and the unix workload attestor', () => {
    const s = resolveAgentConfig(undefined, { joinToken: 'abc' });
    expect(s.nodeAttestor).toBe('join_token');
    expect(s.joinToken).toBe('abc');
    expect(s.k8sPsat).toBeUndefined();
    expect(s.workloadAttestors).toEqual(['unix']);
  });

  it('reads NodeAttestor "k8s_psat" and WorkloadAttestor "k8s" next to "unix", in file order', () => {
    const s = resolveAgentConfig(parseConfigText(k8sConf), {}, { env: { MY_NODE_NAME: 'kind-worker' } });
    expect(s.nodeAttestor).toBe('k8s_psat');
    expect(s.k8sPsat).toEqual({ cluster: 'prod', tokenPath: '/var/run/secrets/tokens/mayfly-agent' });
    expect(s.workloadAttestors).toEqual(['k8s', 'unix']);
    expect(s.k8s?.kubelet?.securePort).toBe(10250);
    expect(s.k8s?.kubelet?.serverName).toBe('kind-worker'); // from $MY_NODE_NAME: the name the kubelet certificate must carry
    expect(s.unix.discoverWorkloadPath).toBe(true);
  });

  it('reports plugin_data problems of both k8s plugins together, with where they are', () => {
    const text = `plugins {
  NodeAttestor "k8s_psat" { plugin_data { token_pth = "/x" } }
  WorkloadAttestor "k8s" { plugin_data { kubelet_prot = 1 } }
}`;
    let msg = '';
    try {
      resolveAgentConfig(parseConfigText(text));
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('unknown key plugins.NodeAttestor.k8s_psat.plugin_data.token_pth');
    expect(msg).toContain('plugins.NodeAttestor.k8s_psat.plugin_data.cluster is required');
    expect(msg).toContain('plugins.WorkloadAttestor.k8s.plugin_data.kubelet_prot');
  });

  it('refuses a join token with k8s_psat, and two node attestors', () => {
    expect(() => resolveAgentConfig(parseConfigText(k8sConf), { joinToken: 'abc' }, { env: {} })).toThrow(/join token .* node attestor is k8s_psat/);
    const two = `plugins {
  NodeAttestor "join_token" { plugin_data {} }
  NodeAttestor "k8s_psat" { plugin_data { cluster = "prod" } }
}`;
    expect(() => resolveAgentConfig(parseConfigText(two))).toThrow(/configure one node attestor; found join_token, k8s_psat/);
  });

  it('still refuses plugins that are not built in', () => {
    expect(() => resolveAgentConfig(parseConfigText('plugins { NodeAttestor "aws_iid" { plugin_data {} } }'))).toThrow(/NodeAttestor "aws_iid" is not built in/);
  });

  it('reads agent { workload_api { … } } into the Workload API connection bounds; none given leaves the defaults', () => {
    expect(resolveAgentConfig(undefined, { joinToken: 'abc' }).workloadApi).toEqual({});
    const text = `agent {
  workload_api {
    max_connections = 8192
    max_connections_per_uid = 1024
    max_connections_per_pid = 32
    connection_idle_timeout = "2m"
    first_request_timeout = "3s"
  }
}`;
    expect(resolveAgentConfig(parseConfigText(text)).workloadApi).toEqual({
      maxConnections: 8192,
      maxConnectionsPerUid: 1024,
      maxConnectionsPerPid: 32,
      connectionIdleTimeoutMs: 120_000,
      firstRequestTimeoutMs: 3_000,
    });
  });

  it('reports workload_api problems with the config file spellings, including a per-uid cap one uid could fill the agent with', () => {
    const bad = (body: string): string => {
      try {
        resolveAgentConfig(parseConfigText(`agent {\n  workload_api {\n${body}\n  }\n}`));
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    };
    expect(bad('max_connections = 200')).toContain('agent.workload_api: max_connections_per_uid (256) must be below max_connections (200)');
    expect(bad('max_connections_per_pid = 512')).toContain('max_connections_per_pid (512) must not exceed max_connections_per_uid (256)');
    expect(bad('max_conections = 5')).toContain('unknown key agent.workload_api.max_conections');
    expect(bad('max_connections_per_uid = "many"')).toContain('agent.workload_api.max_connections_per_uid must be a positive integer');
    expect(bad('connection_idle_timeout = "soon"')).toContain('agent.workload_api.connection_idle_timeout must be a duration');
  });

  it('MayflyAgent refuses unusable Workload API limits when constructed', () => {
    const cfg = { serverAddress: '127.0.0.1:8081', trustDomain: 'example.org', dataDir: '/nonexistent' };
    expect(() => new MayflyAgent({ ...cfg, workloadApiLimits: { maxConnections: 10 } })).toThrow(TypeError);
    expect(() => new MayflyAgent({ ...cfg, workloadApiLimits: { maxConnectionsPerUid: 100, maxConnectionsPerPid: 50 } })).not.toThrow();
  });

  it("accepts SPIRE's telemetry and health_checks blocks (one parser with the server) and the unreachable threshold", () => {
    const none = resolveAgentConfig(undefined);
    expect(none.metrics.enabled).toBe(false);
    expect(none.health.enabled).toBe(false);
    expect(none.serverUnreachableThresholdSeconds).toBeUndefined();
    const s = resolveAgentConfig(
      parseConfigText(`
agent { server_unreachable_threshold = "20m" }
telemetry {
  Prometheus { host = "0.0.0.0" }
}
health_checks {
  listener_enabled = true
  bind_port = 8081
  live_path = "/livez"
  ready_path = "/readyz"
}
`),
    );
    expect(s.metrics).toEqual({ enabled: true, host: '0.0.0.0', port: 9989 });
    expect(s.health).toEqual({ enabled: true, host: '127.0.0.1', port: 8081, livePath: '/livez', readyPath: '/readyz' });
    expect(s.serverUnreachableThresholdSeconds).toBe(1200);
    const bad = (text: string): string => {
      try {
        resolveAgentConfig(parseConfigText(text));
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    };
    expect(bad('telemetry { Prometheus { prot = 1 } }')).toContain('unknown key telemetry.Prometheus.prot');
    expect(bad('health_checks { ready_path = "ready" }')).toContain("health_checks.ready_path must be a path starting with '/'");
    expect(bad('agent { server_unreachable_threshold = "soon" }')).toContain('agent.server_unreachable_threshold must be a duration');
  });
});

describe('agent logging keys (SPIRE spellings)', () => {
  it('reads log_format and log_file from the agent block and refuses other formats', () => {
    const s = resolveAgentConfig(parseConfigText('agent {\n log_format = "text"\n log_file = "/var/log/agent.log"\n}'));
    expect(s).toMatchObject({ logFormat: 'text', logFile: '/var/log/agent.log' });
    expect(() => resolveAgentConfig(parseConfigText('agent {\n log_format = "xml"\n}'))).toThrow(/agent\.log_format must be "json" or "text"/);
  });
});

describe('agent server addresses', () => {
  const problems = (text: string, overrides = {}): string => {
    try {
      resolveAgentConfig(parseConfigText(text), overrides);
    } catch (err) {
      return (err as Error).message;
    }
    return '';
  };

  it("keeps SPIRE's server_address + server_port, and reads Mayfly's server_addresses list instead", () => {
    expect(serverTargetsOf(resolveAgentConfig(undefined))).toEqual(['127.0.0.1:8081']);
    expect(serverTargetsOf(resolveAgentConfig(parseConfigText('agent {\n server_address = "mayfly.internal"\n server_port = "9081"\n}')))).toEqual(['mayfly.internal:9081']);
    expect(serverTargetsOf(resolveAgentConfig(parseConfigText('agent {\n server_address = "fd00::1"\n}')))).toEqual(['[fd00::1]:8081']);
    const s = resolveAgentConfig(parseConfigText('agent {\n server_addresses = ["mayfly-1.internal:8081", "10.0.0.2:8081", "[fd00::3]:8081"]\n}'));
    expect(serverTargetsOf(s)).toEqual(['mayfly-1.internal:8081', '10.0.0.2:8081', '[fd00::3]:8081']);
    // The flags replace the file's single address as before.
    expect(serverTargetsOf(resolveAgentConfig(parseConfigText('agent {\n server_address = "a.internal"\n}'), { serverAddress: 'b.internal', serverPort: 1 }))).toEqual(['b.internal:1']);
  });

  it('refuses a list that is empty, holds something other than host:port, or comes with server_address / server_port or their flags', () => {
    expect(problems('agent {\n server_addresses = []\n}')).toContain('agent.server_addresses must be a non-empty list of "host:port" strings');
    expect(problems('agent {\n server_addresses = "a:1"\n}')).toContain('agent.server_addresses must be a non-empty list');
    expect(problems('agent {\n server_addresses = ["a:1", "b"]\n}')).toContain('agent.server_addresses[1]: server address "b" is not host:port');
    expect(problems('agent {\n server_addresses = ["a:1"]\n server_port = 8081\n}')).toContain('set agent.server_addresses or agent.server_address / agent.server_port, not both');
    expect(problems('agent {\n server_addresses = ["a:1"]\n}', { serverPort: 9 })).toContain('-serverAddress / -serverPort cannot be combined with agent.server_addresses');
    expect(problems('agent {\n server_address = "a.internal:8081"\n}')).toContain('server_address "a.internal:8081" (-serverAddress) must be a host name or IP address, without a port');
  });
});

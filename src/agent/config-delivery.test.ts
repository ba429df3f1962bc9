import { describe, expect, it } from 'vitest';
import { parseHcl } from '../config/hcl.js';
import { resolveAgentConfig } from './config.js';

const load = (inner: string) => resolveAgentConfig(parseHcl(`agent {\n${inner}\n}\nplugins {\nNodeAttestor "join_token" { plugin_data {} }\n}`));

describe('agent { delivery_records }', () => {
  it('defaults when absent, and reads enabled, buffer_size and flush_interval', () => {
    expect(load('').deliveryRecords).toEqual({});
    expect(load('delivery_records {\nenabled = false\nbuffer_size = 500\nflush_interval = "5s"\n}').deliveryRecords).toEqual({ enabled: false, maxBuffered: 500, flushIntervalMs: 5000 });
  });

  it('refuses a bad value or an unknown key, naming it', () => {
    expect(() => load('delivery_records {\nbuffer_size = 0\n}')).toThrow(/agent\.delivery_records\.buffer_size must be an integer from 1 to 1000000/);
    expect(() => load('delivery_records {\nflush_interval = "500ms"\n}')).toThrow(/agent\.delivery_records\.flush_interval must be a duration from 1s to 1h/);
    expect(() => load('delivery_records {\nbatch = 5\n}')).toThrow(/unknown key agent\.delivery_records\.batch/);
  });
});

describe('agent { token_exchange }', () => {
  it('off when absent; reads endpoint, server_spiffe_id, actor_audience and timeout', () => {
    expect(load('').tokenExchange).toBeUndefined();
    expect(load('token_exchange {\nendpoint = "https://srv:8445/token"\nserver_spiffe_id = "spiffe://example.org/spire/server"\nactor_audience = "https://oidc.example.org"\ntimeout = "5s"\n}').tokenExchange).toEqual({
      endpoint: 'https://srv:8445/token',
      serverId: 'spiffe://example.org/spire/server',
      actorAudience: 'https://oidc.example.org',
      timeoutMs: 5000,
    });
  });

  it('refuses a missing or plaintext endpoint, a bad server ID or timeout, an unknown key, naming it', () => {
    expect(() => load('token_exchange {\n}')).toThrow(/agent\.token_exchange\.endpoint is required/);
    expect(() => load('token_exchange {\nendpoint = "http://srv:8445/token"\n}')).toThrow(/agent\.token_exchange\.endpoint must be an https/);
    expect(() => load('token_exchange {\nendpoint = "https://srv/token"\nserver_spiffe_id = "nope"\n}')).toThrow(/agent\.token_exchange\.server_spiffe_id/);
    expect(() => load('token_exchange {\nendpoint = "https://srv/token"\ntimeout = "1h"\n}')).toThrow(/agent\.token_exchange\.timeout/);
    expect(() => load('token_exchange {\nendpoint = "https://srv/token"\ncolour = 1\n}')).toThrow(/unknown key agent\.token_exchange\.colour/);
  });
});

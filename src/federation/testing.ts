/**
 * @module federation/testing
 *
 * Hand-written fakes for the peer bundle fetcher's tests: an in-memory `PeerBundleStore`,
 * a logger and metrics that remember what they were told, timers that fire only when the
 * test says, and a real `node:https` peer bundle endpoint whose certificate and answer the
 * test changes as it goes.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import type { FetcherLogger, FetcherMetrics, PeerBundleStore, PeerRelationship, SetTimer } from './poller.js';
import type { RefusalReason } from './refusal.js';

export class MemoryPeerStore implements PeerBundleStore {
  readonly relationships = new Map<string, PeerRelationship>();
  readonly bundles = new Map<string, { bundle: string; sequence: number }>();
  writes = 0;

  async listFederationRelationships(): Promise<{ items: PeerRelationship[]; nextPageToken: string }> {
    return { items: [...this.relationships.values()].sort((a, b) => (a.trustDomain < b.trustDomain ? -1 : 1)), nextPageToken: '' };
  }

  async getBundle(td: string): Promise<{ bundle: string; sequence: number } | undefined> {
    return this.bundles.get(td);
  }

  async setBundle(b: { trustDomain: string; bundle: string; sequence: number }): Promise<void> {
    this.writes++;
    this.bundles.set(b.trustDomain, { bundle: b.bundle, sequence: b.sequence });
  }
}

export class RecordingLogger implements FetcherLogger {
  readonly lines: { level: 'info' | 'warn'; fields: Record<string, unknown>; message: string }[] = [];
  info(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', fields, message });
  }
  warn(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', fields, message });
  }
  warnings(): { fields: Record<string, unknown>; message: string }[] {
    return this.lines.filter((l) => l.level === 'warn');
  }
}

export class RecordingMetrics implements FetcherMetrics {
  readonly refusals: { trustDomain: string; reason: RefusalReason }[] = [];
  readonly refreshes: { trustDomain: string; at: Date }[] = [];
  refused(trustDomain: string, reason: RefusalReason): void {
    this.refusals.push({ trustDomain, reason });
  }
  refreshed(trustDomain: string, at: Date): void {
    this.refreshes.push({ trustDomain, at });
  }
}

/** Timers that only fire when `fire()` is called; `pending` shows what is scheduled. */
export class ManualTimers {
  readonly pending = new Set<{ fn: () => void; ms: number }>();
  readonly setTimer: SetTimer = (fn, ms) => {
    const t = { fn, ms };
    this.pending.add(t);
    return () => this.pending.delete(t);
  };
  /** Fires every pending timer of at most `maxMs` (default: all). */
  fire(maxMs = Infinity): number {
    const due = [...this.pending].filter((t) => t.ms <= maxMs);
    for (const t of due) {
      this.pending.delete(t);
      t.fn();
    }
    return due.length;
  }
}

export type PeerHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTPS bundle endpoint on 127.0.0.1 with a certificate and handler the test can swap. */
export class TestBundleEndpoint {
  readonly server: Server;
  handler: PeerHandler;
  requests = 0;

  private constructor(server: Server, handler: PeerHandler) {
    this.server = server;
    this.handler = handler;
  }

  static async start(chain: readonly Buffer[], key: KeyObject, handler: PeerHandler): Promise<TestBundleEndpoint> {
    const server = createServer({ cert: pemEncodeCertificates(chain), key: key.export({ type: 'pkcs8', format: 'pem' }) });
    const ep = new TestBundleEndpoint(server, handler);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      ep.requests++;
      ep.handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return ep;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path = '/'): string {
    return `https://127.0.0.1:${this.port}${path}`;
  }

  /** Serves `body` as JSON. */
  serve(body: string): void {
    this.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    };
  }

  setCertificate(chain: readonly Buffer[], key: KeyObject): void {
    this.server.setSecureContext({ cert: pemEncodeCertificates(chain), key: key.export({ type: 'pkcs8', format: 'pem' }) });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * @module attestors/node/conformance
 *
 * What every node attestor does, whatever evidence it judges, on both sides:
 * - server side (`NodeAttestor`): good evidence attests to an agent ID under
 *   `/spire/agent/<type>/` in the server's trust domain with well-formed selectors; evidence
 *   of any other kind, garbage and nothing are refused with a MayflyError (never a crash or
 *   a TypeError); single-use evidence attests exactly once, even raced; re-attestable
 *   evidence attests again to the same agent ID; a challenge–response attestor (x509pop,
 *   fixture `answer`) is driven through `ctx.challenge`, and refuses good evidence when no
 *   challenge can be sent or the answer is junk;
 * - agent side (an evidence source): it produces `{ type: <name>, payload }` for every call,
 *   says whether it may re-attest, the server side of the same plugin accepts what it sends
 *   (answering challenges with `answerChallenge` when it has one),
 *   and evidence it cannot produce fails with `ERR_ATTESTATION_FAILED`.
 * The server and agent catalog tests run these on every registered node attestor with the
 * fixtures its folder keeps (`testing.ts`).
 */
import { describe, expect, it } from 'vitest';
import type { PluginFixture } from '../../config/testing.js';
import { isMayflyError } from '../../spiffe/errors.js';
import { TrustDomain } from '../../spiffe/id.js';
import type { NodeAttestationContext, NodeAttestor } from './attestor.js';

/** A server-side node attestor's fixture. */
export interface NodeAttestorFixture extends PluginFixture {
  readonly binary: 'server';
  readonly kind: 'NodeAttestor';
  /** The HCL inside its `plugin_data { }`. */
  pluginData(): string;
  /** What the server offers its `build` (the plugin takes the part it declares). */
  deps(): object;
  /** Fresh evidence it accepts (single-use evidence is consumed by each attestation). */
  evidence(): Promise<Uint8Array>;
  /** Selectors (`type:value`) the attestation of `evidence` must include. */
  selectors(evidence: Uint8Array): readonly string[];
  /** Whether the same evidence may attest again. */
  readonly canReattest: boolean;
  /** Evidence it must refuse, by what is wrong with it. */
  readonly refused: Readonly<Record<string, () => Promise<Uint8Array>>>;
  /**
   * Challenge–response attestors (x509pop): the agent's answer to `challenge` for
   * `evidence`. The suite then attests with a challenge-carrying context, and checks that
   * evidence without its answer (a transport without challenges) is refused.
   */
  readonly answer?: (evidence: Uint8Array, challenge: Uint8Array) => Promise<Uint8Array>;
}

/** What an agent sends for one attestation (agent/attestation's AgentNodeAttestor). */
export interface EvidenceSource {
  attestationData(): Promise<{ readonly type: string; readonly payload: Buffer }>;
  readonly canReattest?: boolean;
  /** Challenge–response evidence: the answer to the server's challenge for the evidence last sent. */
  answerChallenge?(challenge: Uint8Array): Promise<Uint8Array>;
}

/** An agent-side node attestor's fixture. */
export interface AgentNodeAttestorFixture extends PluginFixture {
  readonly binary: 'agent';
  readonly kind: 'NodeAttestor';
  pluginData(): string;
  /** What the agent offers its `build` (e.g. the join token given). */
  deps(): object;
  readonly canReattest: boolean;
  /** The server side of the same plugin, which must accept what the agent sends. */
  serverSide(): NodeAttestor;
  /** Another configuration, or deps, under which the evidence cannot be produced. */
  readonly unavailable?: { pluginData(): string; deps(): object };
  /** Deps under which there is nothing to send (the build yields undefined), if any. */
  readonly nothingToSend?: () => object;
}

const TD = TrustDomain.parse('conformance.test');
type Challenger = (challenge: Uint8Array) => Promise<Uint8Array>;
const ctx = (td: TrustDomain = TD, challenge?: Challenger): NodeAttestationContext => ({ trustDomain: td, now: new Date(), ...(challenge ? { challenge } : {}) });
/** An agent answering every challenge with junk (garbage evidence must be refused before or at it). */
const junkAnswer: Challenger = async () => Buffer.from('{"junk": true}');

const GARBAGE: Readonly<Record<string, Uint8Array>> = {
  'no bytes': new Uint8Array(0),
  'one zero byte': new Uint8Array(1),
  'bytes that are not UTF-8': Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
  'a megabyte of junk': Buffer.alloc(1024 * 1024, 0x7b),
  'JSON of another shape': Buffer.from('{"token": 1, "cluster": []}'),
};

async function refusedWith(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => new Error('accepted'),
    (err: unknown) => err,
  );
}

function expectWellFormed(selectors: readonly { type: string; value: string }[]): void {
  for (const s of selectors) {
    expect(typeof s.type === 'string' && s.type.length > 0).toBe(true);
    expect(typeof s.value === 'string' && s.value.length > 0).toBe(true);
    expect([...`${s.type}${s.value}`].some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
  }
}

/** The server-side suite; `attestor()` builds one as the server would. */
export function runNodeAttestorConformance(label: string, fixture: NodeAttestorFixture, attestor: () => NodeAttestor): void {
  describe(`node attestor conformance (server): ${label}`, () => {
    const answer = fixture.answer;
    /** The context for `evidence`: with the agent's answers when the attestor challenges. */
    const ctxFor = (evidence: Uint8Array, td: TrustDomain = TD): NodeAttestationContext =>
      ctx(td, answer === undefined ? undefined : (c) => answer(evidence, c));
    it('is the attestation type it is registered as', () => {
      expect(attestor().type).toBe(fixture.name);
    });

    it('attests good evidence to an agent ID of the server\'s trust domain, with well-formed selectors', async () => {
      const evidence = await fixture.evidence();
      const res = await attestor().attest(evidence, ctxFor(evidence));
      expect(res.agentId.trustDomain.equals(TD)).toBe(true);
      expect(res.agentId.path.startsWith(`/spire/agent/${fixture.name}/`)).toBe(true);
      expect(res.agentId.path.length).toBeGreaterThan(`/spire/agent/${fixture.name}/`.length);
      expect(res.canReattest).toBe(fixture.canReattest);
      expect(res.selectors.length).toBeGreaterThan(0);
      expectWellFormed(res.selectors);
      expect(res.selectors.map((s) => `${s.type}:${s.value}`)).toEqual(expect.arrayContaining([...fixture.selectors(evidence)]));
    });

    it('mints the agent ID in whatever trust domain the server has', async () => {
      const other = TrustDomain.parse('elsewhere.test');
      const evidence = await fixture.evidence();
      const res = await attestor().attest(evidence, ctxFor(evidence, other));
      expect(res.agentId.trustDomain.equals(other)).toBe(true);
    });

    it(fixture.canReattest ? 'attests the same evidence again to the same agent ID' : 'attests single-use evidence once, even when raced', async () => {
      const a = attestor();
      const evidence = await fixture.evidence();
      if (fixture.canReattest) {
        const first = await a.attest(evidence, ctxFor(evidence));
        const again = await a.attest(evidence, ctxFor(evidence));
        expect(again.agentId.toString()).toBe(first.agentId.toString());
        return;
      }
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => a.attest(evidence, ctxFor(evidence))));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(isMayflyError(r.reason)).toBe(true);
    });

    for (const [what, make] of Object.entries(fixture.refused)) {
      it(`refuses ${what} with a MayflyError`, async () => {
        const evidence = await make();
        const err = await refusedWith(attestor().attest(evidence, ctxFor(evidence)));
        expect(isMayflyError(err), String(err)).toBe(true);
      });
    }

    if (answer !== undefined) {
      it('refuses good evidence when no challenge can be sent, or when the answer is junk', async () => {
        const evidence = await fixture.evidence();
        expect(isMayflyError(await refusedWith(attestor().attest(evidence, ctx())))).toBe(true);
        expect(isMayflyError(await refusedWith(attestor().attest(evidence, ctx(TD, junkAnswer))))).toBe(true);
      });
    }

    it('refuses garbage of every shape with a MayflyError, never a crash', async () => {
      for (const [what, bytes] of Object.entries(GARBAGE)) {
        const err = await refusedWith(attestor().attest(bytes, ctx(TD, answer === undefined ? undefined : junkAnswer)));
        expect(isMayflyError(err), `${what}: ${String(err)}`).toBe(true);
      }
    });
  });
}

/** The agent-side suite; `source(pluginData, deps)` builds one as the agent would. */
export function runAgentNodeAttestorConformance(
  label: string,
  fixture: AgentNodeAttestorFixture,
  source: (pluginData: string, deps: object) => EvidenceSource | undefined,
): void {
  describe(`node attestor conformance (agent): ${label}`, () => {
    const built = (): EvidenceSource => {
      const s = source(fixture.pluginData(), fixture.deps());
      if (s === undefined) throw new Error('the plugin built nothing to send from its fixture');
      return s;
    };

    it(`sends { type: "${fixture.name}", payload } for every attestation`, async () => {
      const s = built();
      for (let i = 0; i < 2; i++) {
        const data = await s.attestationData();
        expect(data.type).toBe(fixture.name);
        expect(Buffer.isBuffer(data.payload)).toBe(true);
        expect(data.payload.length).toBeGreaterThan(0);
      }
    });

    it(`says whether it may attest again (${fixture.canReattest})`, () => {
      expect(built().canReattest !== false).toBe(fixture.canReattest);
    });

    it('sends evidence the server side of the same plugin accepts', async () => {
      const s = built();
      const data = await s.attestationData();
      const res = await fixture.serverSide().attest(data.payload, ctx(TD, s.answerChallenge?.bind(s)));
      expect(res.agentId.path.startsWith(`/spire/agent/${fixture.name}/`)).toBe(true);
      expect(res.canReattest).toBe(fixture.canReattest);
    });

    const unavailable = fixture.unavailable;
    if (unavailable !== undefined) {
      it('fails with ERR_ATTESTATION_FAILED when it cannot produce its evidence', async () => {
        const s = source(unavailable.pluginData(), unavailable.deps());
        const err = await refusedWith(Promise.resolve().then(() => s?.attestationData()));
        expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED'), String(err)).toBe(true);
      });
    }

    const nothing = fixture.nothingToSend;
    if (nothing !== undefined) {
      it('builds nothing when it has nothing to send (the agent resumes with its stored SVID)', () => {
        expect(source(fixture.pluginData(), nothing())).toBeUndefined();
      });
    }
  });
}

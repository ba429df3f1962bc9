/**
 * @module server/hub
 *
 * In-process change notices: every write the API makes (entries, agents, bundles) and every
 * CA change is announced here, and the authorised-entry streams listen. Notices carry no
 * data: a listener recomputes what it needs from the datastore, so a lost or coalesced
 * notice can never leave a stream with stale content.
 */
export type ChangeTopic =
  | { kind: 'entries' }
  | { kind: 'bundles' }
  | { kind: 'ca' }
  /** The server's X.509 CRLs changed (server/crl-publisher). */
  | { kind: 'crl' }
  | { kind: 'agent'; agentId: string };

export type ChangeListener = (topic: ChangeTopic) => void;

export class ChangeHub {
  readonly #listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  publish(topic: ChangeTopic): void {
    for (const l of [...this.#listeners]) {
      try {
        l(topic);
      } catch {
        // A listener's failure must not stop the others from hearing of the change.
      }
    }
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}

import { describe, expect, it } from 'vitest';
import type { RegistrationEntry } from '../registration/entry.js';
import type { AgentLogger } from './logger.js';
import { WithheldEntriesLog } from './withheld.js';

describe('WithheldEntriesLog', () => {
  it('logs each withheld entry once per reason, and once when it is served again', () => {
    const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
    const log: AgentLogger = {
      debug() {},
      info: (fields, msg) => void lines.push({ level: 'info', fields: fields as Record<string, unknown>, msg }),
      warn: (fields, msg) => void lines.push({ level: 'warn', fields: fields as Record<string, unknown>, msg }),
      error() {},
    };
    const w = new WithheldEntriesLog(log);
    const lapsed = { entryId: 'e1', spiffeId: 'spiffe://td/a', reason: 'owner certification lapsed' };
    w.note({ entries: [], withheldEntries: [lapsed] });
    w.note({ entries: [], withheldEntries: [lapsed] });
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(lines[0]?.fields).toEqual({ entryId: 'e1', spiffeId: 'spiffe://td/a', reason: 'owner certification lapsed' });
    w.note({ entries: [], withheldEntries: [{ ...lapsed, reason: 'other' }] });
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(2);
    w.note({ entries: [{ entryId: 'e1' } as RegistrationEntry], withheldEntries: [] });
    expect(lines.at(-1)).toMatchObject({ level: 'info', fields: { entryId: 'e1' }, msg: 'a withheld entry is served again' });
    expect(w.size).toBe(0);
    // An update without the field (an older server) withholds nothing.
    w.note({ entries: [] });
    expect(lines).toHaveLength(3);
  });
});

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../config/hcl.js';
import { resolveServerConfig } from './config.js';

const resolve = (text: string) => resolveServerConfig(parseConfigText(text), { dataDir: '/nonexistent/mayfly-config-certification' });
const message = (text: string): string => {
  try {
    resolve(text);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('server.certification', () => {
  it('is off by default; the block turns it on with 90d / 14d, days or Go durations', () => {
    expect(resolve('server {}').certification).toBeUndefined();
    expect(resolve('server {\n certification {}\n}').certification).toEqual({ intervalSeconds: 90 * 86_400, graceSeconds: 14 * 86_400 });
    expect(resolve('server {\n certification {\n interval = "30d"\n grace = "36h"\n }\n}').certification).toEqual({ intervalSeconds: 30 * 86_400, graceSeconds: 36 * 3600 });
    expect(resolve('server {\n certification {\n grace = "0s"\n }\n}').certification?.graceSeconds).toBe(0);
  });

  it('refuses bad durations, unknown keys, and a ledger that is off or forgets too soon', () => {
    expect(message('server {\n certification {\n interval = "90 days"\n }\n}')).toMatch(/server\.certification\.interval must be a duration/);
    expect(message('server {\n certification {\n interval = "10m"\n }\n}')).toMatch(/server\.certification\.interval must be a duration of at least 1h.* \(config line 2\)/);
    expect(message('server {\n certification {\n grace = "-1d"\n }\n}')).toMatch(/server\.certification\.grace/);
    expect(message('server {\n certification {\n exempt = true\n }\n}')).toMatch(/unknown key server\.certification\.exempt/);
    expect(message('server {\n certification {}\n}\naudit {\n enabled = false\n}')).toMatch(/needs the audit ledger/);
    expect(message('server {\n certification {}\n}\naudit {\n retention = "720h"\n}')).toMatch(/audit\.retention .* shorter than interval \+ grace/);
    expect(message('server {\n certification {}\n}\naudit {\n retention = "2600h"\n}')).toBe('');
    expect(message('server {\n certification {\n interval = "90d"\n')).toMatch(/line \d+/);
  });
});

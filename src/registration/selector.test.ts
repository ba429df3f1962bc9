import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { compareSelectors, entryMatchesSelectors, formatSelector, parseSelector, sortSelectors, validateSelector, type Selector } from './selector.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return isMayflyError(err) ? err.code : `not a MayflyError: ${String(err)}`;
  }
};

describe('parseSelector', () => {
  it('splits at the first colon (SPIRE semantics)', () => {
    expect(parseSelector('unix:uid:1000')).toEqual({ type: 'unix', value: 'uid:1000' });
    expect(parseSelector('k8s:pod-label:app:web')).toEqual({ type: 'k8s', value: 'pod-label:app:web' });
    expect(parseSelector('docker:image_id:sha256:abc')).toEqual({ type: 'docker', value: 'image_id:sha256:abc' });
    expect(formatSelector(parseSelector('unix:uid:1000'))).toBe('unix:uid:1000');
  });

  it('rejects what it cannot represent faithfully, without normalising', () => {
    for (const bad of [
      'nocolon',
      ':value',
      'unix:',
      'Unix:uid:1', // uppercase type is rejected, not lowercased
      'un ix:uid:1',
      'unix:uid:1\n',
      'unix:a\u0000b',
      'unix:a\u0085b',
      `${'t'.repeat(65)}:v`,
      `unix:${'v'.repeat(1025)}`,
      `unix:${'é'.repeat(513)}`, // 1026 bytes in UTF-8
      'unix:\ud800',
    ]) {
      expect(code(() => parseSelector(bad)), JSON.stringify(bad)).toBe('ERR_SELECTOR_INVALID');
    }
    expect(parseSelector(`${'t'.repeat(64)}:${'v'.repeat(1024)}`).value).toHaveLength(1024);
    expect(parseSelector('k8s:ns:ünïcode').value).toBe('ns:ünïcode');
    expect(() => parseSelector(42 as unknown as string)).toThrow(TypeError);
  });

  it('validates selector objects', () => {
    expect(validateSelector({ type: 'unix', value: 'uid:1' })).toEqual({ type: 'unix', value: 'uid:1' });
    expect(code(() => validateSelector({ type: 'unix' }))).toBe('ERR_SELECTOR_INVALID');
    expect(code(() => validateSelector(null))).toBe('ERR_SELECTOR_INVALID');
    expect(code(() => validateSelector({ type: 'unix', value: 7 }))).toBe('ERR_SELECTOR_INVALID');
  });
});

describe('selector order and matching', () => {
  const s = (t: string): Selector => parseSelector(t);

  it('sorts by type then value, without touching the input', () => {
    const input = [s('unix:uid:2'), s('k8s:ns:a'), s('unix:uid:10'), s('k8s:ns:A')];
    expect(sortSelectors(input).map(formatSelector)).toEqual(['k8s:ns:A', 'k8s:ns:a', 'unix:uid:10', 'unix:uid:2']);
    expect(input.map(formatSelector)).toEqual(['unix:uid:2', 'k8s:ns:a', 'unix:uid:10', 'k8s:ns:A']);
    expect(compareSelectors(s('a:b'), s('a:b'))).toBe(0);
  });

  it('matches an entry when its selectors are a subset of the caller’s', () => {
    const caller = [s('unix:uid:1000'), s('unix:gid:1000'), s('k8s:ns:prod')];
    expect(entryMatchesSelectors([s('unix:uid:1000')], caller)).toBe(true);
    expect(entryMatchesSelectors([s('k8s:ns:prod'), s('unix:uid:1000')], caller)).toBe(true);
    expect(entryMatchesSelectors(caller, caller)).toBe(true);
    expect(entryMatchesSelectors([s('unix:uid:1000'), s('k8s:ns:dev')], caller)).toBe(false);
    expect(entryMatchesSelectors([s('unix:uid:100')], caller)).toBe(false);
    // The type is part of the identity: the same value under another type does not match.
    expect(entryMatchesSelectors([s('docker:uid:1000')], caller)).toBe(false);
    expect(entryMatchesSelectors([], caller)).toBe(false);
    expect(entryMatchesSelectors([s('unix:uid:1000')], [])).toBe(false);
  });
});

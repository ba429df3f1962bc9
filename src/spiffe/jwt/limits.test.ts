import { describe, expect, it } from 'vitest';
import { audienceLimitProblem, MAX_JWT_SVID_AUDIENCE_LENGTH, MAX_JWT_SVID_AUDIENCES } from './index.js';

describe('JWT-SVID audience limits', () => {
  it('are the server\'s numbers: 32 values of at most 1,024 characters', () => {
    expect(MAX_JWT_SVID_AUDIENCES).toBe(32);
    expect(MAX_JWT_SVID_AUDIENCE_LENGTH).toBe(1024);
  });

  it('accepts the largest allowed set; names the limit when one is broken', () => {
    const full = Array.from({ length: 32 }, (_, i) => `${i}-`.padEnd(1024, 'a'));
    expect(audienceLimitProblem(full)).toBeUndefined();
    expect(audienceLimitProblem([...full, 'one-more'])).toBe('too many audiences: 33 distinct values (at most 32)');
    expect(audienceLimitProblem(['a', 'b', '', 'x'.repeat(1025)])).toBe('audience[3] is 1025 characters (at most 1024)');
  });

  it('counts a repeated value once and skips empty values, as the request is forwarded', () => {
    expect(audienceLimitProblem([...Array.from({ length: 32 }, (_, i) => `a${i}`), 'a0', '', ''])).toBeUndefined();
  });

  it('treats a non-array or non-string value as caller misuse', () => {
    expect(() => audienceLimitProblem('a' as unknown as string[])).toThrow(TypeError);
    expect(() => audienceLimitProblem([1] as unknown as string[])).toThrow(TypeError);
  });
});

/** grpc-js's own log lines are kept off the terminal unless asked for. */
import { experimental, logVerbosity, setLogger, setLogVerbosity } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { quietGrpc } from './grpc-quiet.js';

describe('quietGrpc', () => {
  const lines: string[] = [];
  const capture = { error: (...a: unknown[]) => void lines.push(a.join(' ')), info: () => undefined, debug: () => undefined };
  afterEach(() => {
    setLogger(console);
    setLogVerbosity(logVerbosity.ERROR);
    lines.length = 0;
  });

  it('drops the library error lines by default', () => {
    setLogger(capture);
    experimental.log(logVerbosity.ERROR, 'before');
    expect(lines.length).toBe(1);
    expect(quietGrpc({})).toBe(true);
    experimental.log(logVerbosity.ERROR, 'subchannel noise');
    expect(lines.length).toBe(1);
  });

  it('keeps them when GRPC_VERBOSITY or GRPC_TRACE asks', () => {
    setLogger(capture);
    expect(quietGrpc({ GRPC_VERBOSITY: 'DEBUG' })).toBe(false);
    expect(quietGrpc({ GRPC_TRACE: 'all' })).toBe(false);
    experimental.log(logVerbosity.ERROR, 'wanted');
    expect(lines.length).toBe(1);
  });
});

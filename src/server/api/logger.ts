/**
 * @module server/api/logger
 *
 * The `Logger` service (SPIRE's spire.api.server.logger.v1.Logger, admins only): the
 * running server's log level, read (`GetLogger`), changed without a restart
 * (`SetLogLevel`) and put back to the level it was started with (`ResetLogLevel`). Every
 * change is logged (from, to) at info under the more verbose of the two levels, so it
 * shows whenever either level shows info lines.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { SPIRE_LOG_LEVELS, type LogLevelControl, type SpireLogLevel } from '../../config/log-level.js';
import type { Transport } from '../auth.js';
import { unary, type ApiContext } from '../context.js';
import { badRequest } from '../status.js';

/** proto `LoggerState.LogLevel` names. */
type WireLevel = 'PANIC' | 'FATAL' | 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'TRACE';

const toWire = (l: SpireLogLevel): WireLevel => l.toUpperCase() as WireLevel;

function fromWire(v: unknown): SpireLogLevel {
  const level = typeof v === 'string' ? v.toLowerCase() : '';
  if (!(SPIRE_LOG_LEVELS as readonly string[]).includes(level)) throw badRequest(`new_level must be one of ${SPIRE_LOG_LEVELS.map((l) => l.toUpperCase()).join(', ')}; got ${JSON.stringify(v)}`);
  return level as SpireLogLevel;
}

export function loggerService(ctx: ApiContext, t: Transport, control: LogLevelControl): UntypedServiceImplementation {
  const state = (): { current_level: WireLevel; launch_level: WireLevel } => ({ current_level: toWire(control.current()), launch_level: toWire(control.launch) });
  const rank = (l: SpireLogLevel): number => SPIRE_LOG_LEVELS.indexOf(l);
  const change = (to: SpireLogLevel, why: string): void => {
    const from = control.current();
    // Logged at info under whichever of the two levels is the more verbose.
    if (rank(to) < rank(from)) ctx.logger.info({ from, to }, why);
    control.set(to);
    if (rank(to) >= rank(from)) ctx.logger.info({ from, to }, why);
  };
  return {
    GetLogger: unary(ctx, t, 'GetLogger', 'admin', async () => state()),
    SetLogLevel: unary<{ new_level: unknown }, unknown>(ctx, t, 'SetLogLevel', 'admin', async (req) => {
      change(fromWire(req.new_level), 'log level changed through the Logger API');
      return state();
    }),
    ResetLogLevel: unary(ctx, t, 'ResetLogLevel', 'admin', async () => {
      change(control.launch, 'log level reset to the launch level through the Logger API');
      return state();
    }),
  };
}

/**
 * @module cli/bundle-wire
 *
 * The server API's bundle conversions (`bundleFromWire`, `bundleToWire` in server/messages),
 * loaded by the commands that convert bundles when they run rather than at start-up:
 * server/messages brings the server's status helpers and grpc-js with it, which no other
 * command needs (issue 18).
 */
type Messages = typeof import('../server/messages.js');

let loaded: Messages | undefined;

export async function bundleWire(): Promise<Pick<Messages, 'bundleFromWire' | 'bundleToWire'>> {
  loaded ??= await import('../server/messages.js');
  return loaded;
}

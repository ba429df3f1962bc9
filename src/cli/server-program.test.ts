/**
 * cli/server-program's lazy groups: each group adds exactly the top-level commands it
 * declares (a new command missing from SERVER_COMMAND_GROUPS fails here), a call naming a
 * command builds only its group, and help or an unknown word builds the whole tree.
 */
import { describe, expect, it } from 'vitest';
import { runProgram } from './flags.js';
import { buildServerProgram, SERVER_COMMAND_GROUPS } from './server-program.js';

const quiet = { out: () => undefined, err: () => undefined, env: {} };
const names = (p: { commands: ReadonlyArray<{ name(): string }> }): string[] => p.commands.map((c) => c.name());

describe('mayfly-server command groups', () => {
  it('each group adds the commands it declares, and the whole tree is their union', async () => {
    const all = names(await buildServerProgram(quiet));
    expect(all.toSorted()).toEqual(SERVER_COMMAND_GROUPS.flatMap((g) => g.commands).toSorted());
    for (const group of SERVER_COMMAND_GROUPS) {
      for (const command of group.commands) {
        expect(names(await buildServerProgram(quiet, [command, '--help'])).toSorted()).toEqual([...group.commands].toSorted());
      }
    }
  });

  it('help, an unknown command or no argument builds every group', async () => {
    const every = SERVER_COMMAND_GROUPS.flatMap((g) => g.commands).length;
    for (const argv of [['--help'], ['entyr', 'show'], []]) {
      expect(names(await buildServerProgram(quiet, argv))).toHaveLength(every);
    }
  });

  it('an unknown command still gets commander\'s suggestion from the whole tree', async () => {
    let err = '';
    const code = await runProgram(await buildServerProgram({ ...quiet, err: (t) => void (err += t) }, ['entyr']), ['entyr']);
    expect(code).not.toBe(0);
    expect(err).toContain('entry');
  });
});

// ts/cli/help.ts: help that fits the terminal, flags in one column, descriptions wrapped.
import { describe, expect, it } from 'vitest';

import { containerArgs } from '../../ts/cli/args.js';
import { renderHelp, wrap } from '../../ts/cli/help.js';

describe('help (issue 19)', () => {
  it('wraps words within the width, after the indent', () => {
    expect(wrap('aa bb cc dd', 8, 2)).toEqual(['  aa bb', '  cc dd']);
    expect(wrap('', 80, 4)).toEqual([]);
  });

  it('renders every flag of run, its --no- form, and --help, within 80 and 60 columns', () => {
    for (const width of [80, 60]) {
      const text = renderHelp({ usage: 'tsbox run [OPTIONS] [--] COMMAND', description: 'Run a command in a new container', args: containerArgs, examples: 'Examples:\n  tsbox run -- true' }, width);
      for (const name of Object.keys(containerArgs)) expect(text).toContain(`--${name}`);
      expect(text).toContain('--no-init');
      expect(text).toContain('      --help');
      expect(text).toContain('  -v, --volume HOST:CONTAINER');
      expect(text.split('\n').filter((l) => [...l].length > width)).toEqual([]);
      expect(text.trimEnd().endsWith('tsbox run -- true')).toBe(true);
    }
  });
});

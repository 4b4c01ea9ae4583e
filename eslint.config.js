// ESLint for the TypeScript sources (`npm run lint:ts`): ESLint's and
// typescript-eslint's recommended rules, with type information, so that promise
// mistakes (a floating promise, an async callback where a sync one is expected)
// are caught along with the usual ones. Type-only imports are tsc's business
// (tsconfig's verbatimModuleSyntax).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'native/', 'target/', 'node_modules/'] },
  {
    files: ['ts/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // `_name` marks a parameter or binding that is unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Fire-and-forget is allowed when written out: `void promise`.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // Worth a look, not a failed build: a caught error kept in a variable and
      // rethrown after narrowing (`if (first !== null) throw first`) is flagged
      // too, and a dead store is harmless.
      '@typescript-eslint/only-throw-error': 'warn',
      'no-useless-assignment': 'warn',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
);

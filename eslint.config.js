import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.data', '.venv-tools', '.tools', 'coverage'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The web console's pages run in the browser (no bundler, no `globals` package needed).
    files: ['src/api/ui/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'sessionStorage',
          'fetch',
          'confirm',
          'URL',
          'Node',
          'WebSocket',
          'TextEncoder',
          'TextDecoderStream',
          'AbortController',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: only the workflow SDK, shared
    // message definitions and type-only imports of activities are allowed.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'crypto', 'http', 'os'],
              message: 'No Node built-ins in workflows.',
            },
            {
              group: [
                '../activities/*',
                '../backends/*',
                '../db/*',
                '../api/*',
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
              ],
              allowTypeImports: true,
              message: 'Workflows import only @temporalio/workflow, messages and types.',
            },
          ],
        },
      ],
    },
  },
);

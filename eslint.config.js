// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// src/raft and src/state must be pure: replicas apply the same log to the same
// result only if nothing there reads a clock, a random source or the outside world.
const purityRules = {
  'no-restricted-imports': [
    'error',
    {
      patterns: [
        { group: ['node:*'], message: 'src/raft and src/state do no I/O: pass what you need in.' },
        { group: ['@grpc/*', 'better-sqlite3', 'pino', 'pino-*'], message: 'src/raft and src/state do no I/O.' },
      ],
      paths: ['fs', 'path', 'os', 'crypto', 'net', 'child_process', 'worker_threads', 'timers'].map((name) => ({
        name,
        message: 'src/raft and src/state do no I/O: pass what you need in.',
      })),
    },
  ],
  'no-restricted-globals': [
    'error',
    ...['Date', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'queueMicrotask', 'performance', 'process', 'require'].map(
      (name) => ({ name, message: `${name} is not allowed in src/raft or src/state: time and randomness are inputs.` }),
    ),
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Math', property: 'random', message: 'Use the injected seeded PRNG.' },
    { object: 'crypto', property: 'getRandomValues', message: 'Use the injected seeded PRNG.' },
    { object: 'globalThis', property: 'Date', message: 'Time is an input.' },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'data/', 'coverage/', 'src/generated/', 'tmp-*/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name=/^(it|test|describe)$/][callee.property.name='only']",
          message: '.only would silence the rest of the suite.',
        },
      ],
      eqeqeq: ['error', 'always'],
    },
  },
  { files: ['src/raft/**/*.ts', 'src/state/**/*.ts'], rules: purityRules },
);

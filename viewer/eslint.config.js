// ESLint (flat config): @eslint/js recommended on the viewer's browser modules and the
// node unit tests.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', 'src/types/'] },
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser },
    },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-restricted-properties': [
        'error',
        { property: 'innerHTML', message: 'insert data as text (el(), textContent)' },
        { property: 'outerHTML', message: 'insert data as text (el(), textContent)' },
        { property: 'insertAdjacentHTML', message: 'insert data as text (el(), textContent)' },
      ],
    },
  },
  {
    // classic scripts loaded before the modules (index.html)
    files: ['src/boot.js', 'src/check.js'],
    languageOptions: { sourceType: 'script' },
  },
  {
    files: ['test/**/*.js', 'eslint.config.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
];

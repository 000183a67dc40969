// ESLint flat config: typescript-eslint's type-aware rules over src/ and test/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** A folder of src/ is entered through its index.ts (docs/architecture.md). */
const deepImports = {
  patterns: [
    {
      group: ['../*/*', '!../*/index.js', '../../*/*', '!../../*/index.js'],
      message: "import another folder through its index.js (docs/architecture.md: 'Folders')",
    },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'lab/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', deepImports] },
  },
  {
    // Tests read JSON from the wire (JSON.parse is `any`) and check it with assertions, which is
    // what the no-unsafe-* rules would otherwise ask for; fakes implement async interfaces
    // without awaiting. Promise handling, `any` in signatures and the rest stay on.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['eslint.config.js', 'vitest.config.ts'],
    ...tseslint.configs.disableTypeChecked,
  },
);

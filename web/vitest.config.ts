import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { dedupe: ['yjs', 'y-protocols', 'lib0', '@tiptap/pm'] },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
    // One failing test must fail `npm test` without prompting for anything.
    watch: false,
  },
});

import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

/**
 * Emits `dist/sw.js`: the service worker that lets a document page reload
 * while offline (its content comes from IndexedDB, the app shell from here).
 * The precache list is every file of this build, so the worker's bytes, and
 * therefore its version, change whenever the app does.
 */
function serviceWorker(): Plugin {
  return {
    name: 'quire-service-worker',
    apply: 'build',
    generateBundle(_options, bundle) {
      // index.html is emitted by Vite's own HTML plugin, possibly after this
      // hook, so it is listed explicitly.
      const files = [
        ...new Set(['/index.html', ...Object.keys(bundle).filter((name) => !name.endsWith('.map')).map((name) => `/${name}`)]),
      ].sort();
      const version = createHash('sha256').update(files.join('\n')).digest('hex').slice(0, 16);
      const template = readFileSync(new URL('./src/sw.template.js', import.meta.url), 'utf8');
      const source = template
        .replace('__QUIRE_PRECACHE__', JSON.stringify(files))
        .replace('__QUIRE_VERSION__', JSON.stringify(version));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

// `npm run dev` proxies the API and sync socket to a running `quire serve`.
const devServer = process.env.QUIRE_DEV_SERVER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react(), serviceWorker()],
  resolve: {
    // Two copies of Yjs break its instanceof checks ("Yjs was already imported").
    dedupe: ['yjs', 'y-protocols', 'lib0', '@tiptap/pm'],
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: false,
    // The editor chunk (ProseMirror + Tiptap) is large by nature; it is split
    // out and loaded only on document pages.
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
            { name: 'yjs', test: /node_modules[\\/](yjs|y-protocols|y-websocket|y-indexeddb|lib0)[\\/]/ },
            { name: 'tiptap', test: /node_modules[\\/](@tiptap|prosemirror-[a-z-]+|linkifyjs|orderedmap|rope-sequence|w3c-keyname|@popperjs|@floating-ui)[\\/]/ },
          ],
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': devServer,
      '/ws': { target: devServer.replace(/^http/, 'ws'), ws: true },
    },
  },
});

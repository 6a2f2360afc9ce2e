// The web UI's build: `make` runs `vite build --outDir BUILD/web`; web/embed_assets.py turns
// that folder into a C table compiled into build/autocv (src/server/api_static.c serves it).
// `npm run dev` serves the UI with hot reload and proxies the API to a running `autocv serve`
// (AUTOCV_URL, default http://127.0.0.1:8080).
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const api = process.env.AUTOCV_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [svelte()],
  build: {
    // one request less per page and no source maps in the binary
    assetsInlineLimit: 4096,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { '/api': api, '/v2': api, '/healthz': api },
  },
});

import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The demo client. `npm start` builds it into dist/client and the gateway serves it at `/`;
// `npm run dev` serves it with hot reload and proxies the API to a gateway in demo mode.
export default defineConfig({
  root: 'client/demo',
  plugins: [react()],
  build: { outDir: '../../dist/client', emptyOutDir: true },
  server: {
    port: 5173,
    proxy: {
      '/trpc': 'http://127.0.0.1:3002',
      '/v1': 'http://127.0.0.1:3002',
      '/dev': 'http://127.0.0.1:3002',
    },
  },
});

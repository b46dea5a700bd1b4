import { createTRPCReact } from '@trpc/react-query';
import type { AppRouter } from '../../server/gateway/router';

/** tRPC's React Query bindings for the gateway's router. KeyrackProvider installs them. */
export const trpc = createTRPCReact<AppRouter>();

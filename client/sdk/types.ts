import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '../../server/gateway/router';

/** Every procedure's input and output, as the gateway's router declares them. */
export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;

/** One entry of models.list. */
export type KeyrackModel = RouterOutputs['models']['list'][number];
export type { AppRouter };

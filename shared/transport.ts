/**
 * Procedures one tRPC batch request (`?batch=1`) may carry: each call can be an upstream call,
 * so an unbounded batch let one request run 100 of them (issue 24.11). The gateway answers a
 * larger batch with 400; the SDK's batch link splits at this size. (No zod here: the SDK
 * imports this file at run time.)
 */
export const MAX_TRPC_BATCH_SIZE = 10;

export * from './providers';
export * from './chat';
export * from './pool';
export * from './api';
export * from './business';
export * from './byok';
export * from './usage';
export * from './transport';
// api.ts and usage.ts both define the (identical) user id schema: name the one the barrel serves.
export { userIdSchema } from './api';
export * from './embeddings';

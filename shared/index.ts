export * from './providers';
export * from './chat';
export * from './pool';

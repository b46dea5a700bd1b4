// ioredis's own dependency (it routes cluster commands by it); it ships no types.
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string | Buffer): number;
}

/**
 * The Redis keys of one chat stream (issue 22, Redis Cluster). A stream's keys share the hash
 * tag of its bucket, `{streams:<b>}` with b one of STREAM_BUCKETS, a hash of the stream id:
 *   <prefix>:{streams:<b>}:<streamId>:events    the Redis Stream of its events
 *   <prefix>:{streams:<b>}:<streamId>:owner     the user it belongs to
 *   <prefix>:{streams:<b>}:<streamId>:producer  the id of the instance writing it
 * Buckets, not one tag per stream (`{chat:<id>}` before): on a cluster every multi-key command
 * must stay in one slot, and both the flush (one WRITE_BATCH script over many streams) and the
 * readers' one blocking XREAD over every followed stream are multi-key. With a tag per stream a
 * cluster would need a blocking connection per followed stream (issue 24.7's 300 connections);
 * with buckets it is at most one per bucket, and a flush at most one script call per bucket.
 * On a single node the bucket changes nothing (one XREAD, one script call per batch, as before).
 * The liveness keys `<prefix>:streams:alive:<instanceId>` are single keys, set on their own.
 * Streams live minutes: the rename from `{chat:<id>}` needs no migration (a resume across an
 * upgrade of a stream begun before it starts the answer again).
 */
export const STREAM_BUCKETS = 16;

export interface StreamKeys {
  events: string;
  owner: string;
  /** Holds the id of the instance producing the stream; its liveness key is `<alivePrefix><id>`. */
  producer: string;
  /** Its bucket: streams of one bucket may share a command on a cluster. */
  bucket: number;
}

/** FNV-1a of the id, folded onto the buckets: cheap, stable across instances and versions. */
export function streamBucket(streamId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < streamId.length; i += 1) {
    hash ^= streamId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % STREAM_BUCKETS;
}

export function streamKeysOf(prefix: string, streamId: string): StreamKeys {
  const bucket = streamBucket(streamId);
  const base = `${prefix}:{streams:${bucket}}:${streamId}`;
  return { events: `${base}:events`, owner: `${base}:owner`, producer: `${base}:producer`, bucket };
}

/** The liveness key prefix of the producers writing streams under `prefix`. */
export function streamAlivePrefix(prefix: string): string {
  return `${prefix}:streams:alive:`;
}

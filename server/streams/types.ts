import type { StreamEvent } from '../../shared';

/** One event of a chat stream with its id: "1", "2", ... in order. */
export interface BufferedEvent {
  id: string;
  event: StreamEvent;
}

/**
 * A copy of every chat stream kept outside the process (Redis), so a client whose reconnect
 * lands on another gateway instance still resumes from its last event. The instance that runs
 * the upstream call writes; any instance reads.
 */
export interface DurableStreamBuffer {
  /**
   * The writer calls create, append..., finish in order without awaiting each call: an
   * implementation must apply them in call order (and may batch them).
   */
  create(streamId: string, owner: string): Promise<void>;
  /** `seq` starts at 1 and has no gaps. */
  append(streamId: string, seq: number, event: StreamEvent): Promise<void>;
  finish(streamId: string, seq: number): Promise<void>;
  /** The user the stream belongs to; null when unknown or expired. */
  owner(streamId: string): Promise<string | null>;
  /** Events after `afterSeq` until the stream finishes, the signal aborts or the copy expires. */
  read(streamId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BufferedEvent>;
  close(): Promise<void>;
}

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
   * The writer calls create, append..., finish in order: an implementation applies them in
   * call order (and may batch them). They return nothing; how the copy is doing reaches
   * `progress` (no promise per event or batch: at 1,000 streams those outlived the young
   * generation and were most of the RSS growth, issue #8).
   */
  create(streamId: string, owner: string, progress?: DurableWriteProgress): void;
  /** `seq` starts at 1 and has no gaps. The event must not change afterwards (it may be serialized later). */
  append(streamId: string, seq: number, event: StreamEvent): void;
  finish(streamId: string, seq: number): void;
  /** Resolves once everything handed over before the call has been written or has failed. */
  flushed(): Promise<void>;
  /** The user the stream belongs to; null when unknown or expired. */
  owner(streamId: string): Promise<string | null>;
  /**
   * Events after `afterSeq` until the stream finishes, the signal aborts or the copy expires;
   * when its producer died without finishing it, a last `stream_interrupted` error event.
   */
  read(streamId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BufferedEvent>;
  close(): Promise<void>;
}

/** What a stream's writer hears about its durable copy. */
export interface DurableWriteProgress {
  /** The copy now holds every event up to `seq`. */
  written(seq: number): void;
  /** A write failed: events after the last `written` seq may be missing from the copy. */
  failed(error: unknown): void;
}

import type { ChatMessage, ChatRole, FinishReason, ProviderId, StreamEvent, TokenUsage } from '../../../shared';
import { KeyrackError, toKeyrackError } from '../KeyrackError';
import type { ChatTransport, TrackedStreamEvent } from './ChatTransport';

/** `submitted`: waiting for the first event; `streaming`: text arriving; `ready`: idle; `error`: the last answer failed. */
export type ChatStatus = 'ready' | 'submitted' | 'streaming' | 'error';

export interface ChatCost {
  /** US dollars, markup included. */
  estimatedUsd: number;
  actualUsd?: number;
}

/** One message of a conversation as the UI shows it. */
export interface KeyrackMessage {
  id: string;
  role: ChatRole;
  content: string;
  /** Assistant messages: who answered (the key only as its fingerprint). */
  provider?: ProviderId;
  model?: string;
  keyFingerprint?: string;
  usage?: TokenUsage;
  cost?: ChatCost;
  /** `aborted` after stop(); `error` when the stream failed after text had arrived. */
  finishReason?: FinishReason;
  warnings?: string[];
}

export interface ChatSnapshot {
  readonly messages: readonly KeyrackMessage[];
  readonly status: ChatStatus;
  readonly error: KeyrackError | null;
  /** Token usage and cost of the latest answer (null until its usage event arrives). */
  readonly usage: TokenUsage | null;
  readonly cost: ChatCost | null;
  /** Set when every key was busy: how long until the gateway expects one back. */
  readonly retryAfterMs: number | undefined;
}

export interface ChatControllerOptions {
  transport: ChatTransport;
  model: string;
  initialMessages?: readonly KeyrackMessage[];
  /** Called once per answer when it ends: done, stopped (finishReason `aborted`) or failed mid-text. */
  onFinish?: (message: KeyrackMessage) => void;
  /** Resumptions after a dropped stream before giving up (default 3). */
  maxResumes?: number;
}

/** One send(): its stream, what it has seen, and how to cancel it. */
interface Run {
  assistantId: string;
  streamId?: string;
  lastEventId?: string;
  /** Event ids already applied: a resumed stream may repeat some, and text must not double. */
  seen: Set<string>;
  resumes: number;
  stopped: boolean;
  cancel?: () => void;
  settle: () => void;
}

let idCounter = 0;
function nextId(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${idCounter.toString(36)}`;
}

/**
 * A conversation's state, free of any UI framework. React reads it through
 * useSyncExternalStore (see useChat); anything else can subscribe() and getSnapshot().
 * Snapshots are immutable: every change makes a new one.
 */
export class ChatController {
  #state: ChatSnapshot;
  #listeners = new Set<() => void>();
  #run: Run | null = null;
  #options: ChatControllerOptions;

  constructor(options: ChatControllerOptions) {
    this.#options = options;
    this.#state = {
      messages: options.initialMessages ?? [],
      status: 'ready',
      error: null,
      usage: null,
      cost: null,
      retryAfterMs: undefined,
    };
  }

  /** Model and callbacks may change between renders; the next send() uses the latest. */
  setOptions(options: Partial<Pick<ChatControllerOptions, 'model' | 'onFinish'>>): void {
    this.#options = { ...this.#options, ...options };
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  getSnapshot = (): ChatSnapshot => this.#state;

  /**
   * Sends a user message and streams the answer. Resolves when the answer ends (done, stopped
   * or failed); never rejects: failures land in `status`/`error`. Ignored while an answer runs.
   */
  send = async (text: string): Promise<void> => {
    const content = text.trim();
    if (content === '' || this.#run) return;
    const messages = [...this.#state.messages, { id: nextId('user'), role: 'user' as const, content }];
    const request = {
      model: this.#options.model,
      messages: messages.filter((m) => m.content !== '').map(({ role, content }): ChatMessage => (role === 'assistant' ? { role, content } : { role: 'user', content })),
    };
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const run: Run = { assistantId: nextId('assistant'), seen: new Set(), resumes: 0, stopped: false, settle };
    this.#run = run;
    this.#set({ messages, status: 'submitted', error: null, usage: null, cost: null, retryAfterMs: undefined });

    let first: readonly TrackedStreamEvent[];
    try {
      const started = await this.#options.transport.start(request);
      run.streamId = started.streamId;
      first = started.events ?? [];
    } catch (error) {
      if (!run.stopped) this.#fail(run, toKeyrackError(error));
      return settled;
    }
    if (run.stopped) {
      // Stopped while the gateway was accepting the request: attach and leave at once, so the
      // gateway sees the last subscriber go and cancels the upstream call.
      this.#options.transport.stream({ streamId: run.streamId }, { onEvent() {}, onError() {}, onComplete() {} })();
      return settled;
    }
    // The events chat.start brought (the first text, usually) show now; the stream resumes
    // after the last of them. If they hold the end, the answer is over without a stream.
    for (const tracked of first) this.#onEvent(run, tracked);
    if (this.#run === run) this.#open(run);
    return settled;
  };

  /** Cancels the running answer (the upstream call too) and keeps the text received so far. */
  stop = (): void => {
    const run = this.#run;
    if (!run) return;
    run.stopped = true;
    run.cancel?.();
    const message = this.#assistant(run);
    if (message) this.#patchAssistant(run, { finishReason: 'aborted' });
    this.#end(run, { status: 'ready' });
    const finished = this.#assistant(run);
    if (finished) this.#options.onFinish?.(finished);
  };

  /** Replaces the conversation (e.g. "new chat"); stops a running answer first. */
  setMessages(messages: readonly KeyrackMessage[]): void {
    this.stop();
    this.#set({ messages, status: 'ready', error: null, usage: null, cost: null, retryAfterMs: undefined });
  }

  #open(run: Run): void {
    const input = { streamId: run.streamId!, ...(run.lastEventId !== undefined ? { lastEventId: run.lastEventId } : {}) };
    run.cancel = this.#options.transport.stream(input, {
      onEvent: (tracked) => this.#onEvent(run, tracked),
      onError: (error) => this.#onStreamError(run, error),
      onComplete: () => {
        // The server ended the stream without a done/error event (e.g. it was shutting down).
        if (this.#run === run) this.#finish(run, 'other');
      },
    });
  }

  #onEvent(run: Run, { id, event }: TrackedStreamEvent): void {
    if (this.#run !== run || run.seen.has(id)) return;
    run.seen.add(id);
    run.lastEventId = id;
    this.#apply(run, event);
  }

  #apply(run: Run, event: StreamEvent): void {
    switch (event.type) {
      case 'start':
        this.#patchAssistant(run, { provider: event.provider, model: event.model, keyFingerprint: event.keyFingerprint });
        this.#set({ status: 'streaming' });
        return;
      case 'warning': {
        const warnings = [...(this.#assistant(run)?.warnings ?? []), event.message];
        this.#patchAssistant(run, { warnings });
        return;
      }
      case 'delta': {
        const content = (this.#assistant(run)?.content ?? '') + event.text;
        this.#patchAssistant(run, { content });
        if (this.#state.status !== 'streaming') this.#set({ status: 'streaming' });
        return;
      }
      case 'usage':
        this.#patchAssistant(run, { usage: event.usage, ...(event.cost ? { cost: event.cost } : {}) });
        this.#set({ usage: event.usage, cost: event.cost ?? null });
        return;
      case 'done':
        this.#finish(run, event.finishReason);
        return;
      case 'error': {
        const error = new KeyrackError(event.code, event.message, event.retryAfterMs);
        this.#fail(run, error);
        return;
      }
    }
  }

  #onStreamError(run: Run, cause: unknown): void {
    if (this.#run !== run) return;
    const error = toKeyrackError(cause);
    // A dropped connection is resumed from the last event seen: the gateway buffers the answer,
    // so no second upstream call is made and no text is repeated.
    if (error.code === 'network' && run.resumes < (this.#options.maxResumes ?? 3)) {
      run.resumes += 1;
      this.#open(run);
      return;
    }
    this.#fail(run, error);
  }

  #finish(run: Run, finishReason: FinishReason): void {
    if (this.#assistant(run)) this.#patchAssistant(run, { finishReason });
    this.#end(run, { status: 'ready' });
    const message = this.#assistant(run);
    if (message) this.#options.onFinish?.(message);
  }

  #fail(run: Run, error: KeyrackError): void {
    const message = this.#assistant(run);
    // Keep a partial answer (marked), drop an empty placeholder.
    if (message && message.content === '') {
      this.#set({ messages: this.#state.messages.filter((m) => m.id !== run.assistantId) });
    } else if (message) {
      this.#patchAssistant(run, { finishReason: 'error' });
    }
    run.cancel?.();
    this.#end(run, { status: 'error', error, retryAfterMs: error.retryAfterMs });
    const kept = this.#assistant(run);
    if (kept) this.#options.onFinish?.(kept);
  }

  #end(run: Run, patch: Partial<ChatSnapshot>): void {
    if (this.#run !== run) return;
    this.#run = null;
    this.#set(patch);
    run.settle();
  }

  #assistant(run: Run): KeyrackMessage | undefined {
    return this.#state.messages.find((m) => m.id === run.assistantId);
  }

  #patchAssistant(run: Run, patch: Partial<KeyrackMessage>): void {
    const existing = this.#assistant(run);
    const messages = existing
      ? this.#state.messages.map((m) => (m.id === run.assistantId ? { ...m, ...patch } : m))
      : [...this.#state.messages, { id: run.assistantId, role: 'assistant' as const, content: '', ...patch }];
    this.#set({ messages });
  }

  #set(patch: Partial<ChatSnapshot>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of this.#listeners) listener();
  }
}

import { imageUrlSchema, type ChatRequest, type ChatRequestInput, type ChatRole, type FinishReason, type ProviderId, type StreamEvent, type TokenUsage } from '../../../shared';
import { KeyrackError, toKeyrackError } from '../KeyrackError';
import type { ChatTransport, TrackedStreamEvent } from './ChatTransport';
import type { KeyrackTools } from './KeyrackTool';
import { toRequestMessages } from './toRequestMessages';

/**
 * `submitted`: waiting, for the gateway's first event or for client-side tools to finish before
 * the next step; `streaming`: an answer is arriving; `ready`: idle (also while tool calls wait
 * for addToolResult); `error`: the last answer failed.
 */
export type ChatStatus = 'ready' | 'submitted' | 'streaming' | 'error';

export interface ChatCost {
  /** US dollars, markup included. */
  estimatedUsd: number;
  actualUsd?: number;
}

/**
 * `partial`: its arguments are still streaming; `call`: complete, waiting for its result (its
 * `execute` runs, or addToolResult); `result`: answered; `error`: its arguments were not JSON,
 * no such tool, or `execute` threw (the error goes back to the model as the result).
 */
export type ToolCallState = 'partial' | 'call' | 'result' | 'error';

/** A tool call of an assistant message, assembled from the stream's tool_call_delta events. */
export interface KeyrackToolCall {
  id: string;
  name: string;
  /** The arguments as JSON text, as the model wrote it; grows while `partial`. */
  argumentsText: string;
  /** The parsed arguments, once the call is complete and its text is valid JSON. */
  args?: unknown;
  state: ToolCallState;
  result?: unknown;
  error?: string;
}

/** Tool results live on the assistant's calls, so a conversation has no `tool` messages of its own. */
export type KeyrackMessageRole = Exclude<ChatRole, 'tool'>;

/** One message of a conversation as the UI shows it. */
export interface KeyrackMessage {
  id: string;
  role: KeyrackMessageRole;
  /** The text: the user's, or the answer's (without its reasoning). */
  content: string;
  /** User messages: attached images (http(s) or data: URLs), sent as image parts after the text. */
  images?: readonly string[];
  /** Assistant messages: the model's thinking text, kept apart from the answer. */
  reasoning?: string;
  /** Assistant messages: the calls the model made, in order. */
  toolCalls?: readonly KeyrackToolCall[];
  /** Assistant messages: who answered (the key only as its fingerprint). */
  provider?: ProviderId;
  model?: string;
  keyFingerprint?: string;
  usage?: TokenUsage;
  cost?: ChatCost;
  /** `aborted` after stop(); `error` when the stream failed after something had arrived; `tool_calls` when the model called tools. */
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

/** The rest of a chat request, sent with every step (sampling, output format, reasoning effort, tool choice). */
export type ChatRequestOptions = Omit<ChatRequestInput, 'model' | 'messages' | 'tools'>;

export interface SendOptions {
  /** Images to attach: `https://…` URLs or `data:image/(png|jpeg|gif|webp);base64,…` URLs. */
  images?: readonly string[];
}

export interface ChatControllerOptions {
  transport: ChatTransport;
  model: string;
  initialMessages?: readonly KeyrackMessage[];
  /** Called once per answer when it ends: done, stopped (finishReason `aborted`) or failed mid-answer. A tool step is an answer. */
  onFinish?: (message: KeyrackMessage) => void;
  /** Resumptions after a dropped stream before giving up (default 3). */
  maxResumes?: number;
  /** Functions the model may call (see KeyrackTool). */
  tools?: KeyrackTools;
  /** Answers one user message may take, tool steps included (default 5): 1 runs tools but sends no results back. */
  maxSteps?: number;
  /**
   * Other request fields. A forcing `toolChoice` (`required` or a named function) applies to the
   * first step of a turn; the steps after a tool result use `auto`, or the model would be
   * forced to call again until maxSteps.
   */
  request?: ChatRequestOptions;
}

export const DEFAULT_MAX_STEPS = 5;

/** One answer: its stream, what it has seen, and how to cancel it. */
interface Run {
  assistantId: string;
  streamId?: string;
  lastEventId?: string;
  /** Event ids already applied: a resumed stream may repeat some, and text must not double. */
  seen: Set<string>;
  /** A tool call's position in the message, by the index its deltas carry. */
  callAt: Map<number, number>;
  resumes: number;
  stopped: boolean;
  cancel?: () => void;
  settle: () => void;
}

/** One send() (or addToolResult continuation) with all its steps: answers and client-side tools. */
interface Turn {
  stopped: boolean;
  /** Handed to tools' execute; aborted by stop(). */
  abort: AbortController;
}

let idCounter = 0;
function nextId(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${idCounter.toString(36)}`;
}

const ANSWERED: ReadonlySet<ToolCallState> = new Set(['result', 'error']);
const UNANSWERED = 'no result: the conversation went on without one';

/**
 * A conversation's state, free of any UI framework. React reads it through
 * useSyncExternalStore (see useChat); anything else can subscribe() and getSnapshot().
 * Snapshots are immutable: every change makes a new one.
 */
export class ChatController {
  #state: ChatSnapshot;
  #listeners = new Set<() => void>();
  #run: Run | null = null;
  #turn: Turn | null = null;
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

  /** Model, tools and callbacks may change between renders; the next step uses the latest. */
  setOptions(options: Partial<Pick<ChatControllerOptions, 'model' | 'onFinish' | 'tools' | 'maxSteps' | 'request'>>): void {
    this.#options = { ...this.#options, ...options };
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  getSnapshot = (): ChatSnapshot => this.#state;

  /**
   * Sends a user message (text, images or both) and streams the answer, running client-side
   * tools and sending their results back up to maxSteps. Resolves when the turn ends (done,
   * waiting for addToolResult, stopped or failed); never rejects: failures land in
   * `status`/`error`. Ignored while a turn runs.
   */
  send = async (text: string, options: SendOptions = {}): Promise<void> => {
    const content = text.trim();
    const images = [...(options.images ?? [])];
    if ((content === '' && images.length === 0) || this.#turn) return;
    for (const [i, url] of images.entries()) {
      const checked = imageUrlSchema.safeParse(url);
      if (!checked.success) {
        this.#set({ status: 'error', error: new KeyrackError('bad_request', `images[${i}]: ${checked.error.issues[0]?.message ?? 'not an image URL'}`), retryAfterMs: undefined });
        return;
      }
    }
    const user: KeyrackMessage = { id: nextId('user'), role: 'user', content, ...(images.length > 0 ? { images } : {}) };
    // Calls still waiting get an error result: a provider refuses a call left unanswered.
    const messages = [...settleUnanswered(this.#state.messages), user];
    this.#set({ messages, status: 'submitted', error: null, usage: null, cost: null, retryAfterMs: undefined });
    return this.#runTurn();
  };

  /**
   * Answers a tool call that has no `execute` (human in the loop). Once every call of that
   * answer has its result, the conversation goes on by itself (within maxSteps); resolves when
   * that continuation ends. A call that is not waiting (unknown id, already answered) is ignored.
   */
  addToolResult = async ({ toolCallId, result }: { toolCallId: string; result: unknown }): Promise<void> => {
    const message = this.#state.messages.findLast((m) => m.toolCalls?.some((c) => c.id === toolCallId && c.state === 'call'));
    if (!message) return;
    this.#patchCall(message.id, toolCallId, { state: 'result', result });
    // A running turn (its other tools still executing) sees the result when they are done.
    if (this.#turn || this.#state.messages.at(-1)?.id !== message.id) return;
    if (!this.#canContinue(message.id)) return;
    this.#set({ status: 'submitted', error: null, usage: null, cost: null, retryAfterMs: undefined });
    return this.#runTurn();
  };

  /** Cancels the running answer (the upstream call too) and tools; keeps what was received so far. */
  stop = (): void => {
    const turn = this.#turn;
    if (turn) {
      turn.stopped = true;
      turn.abort.abort();
      this.#turn = null;
    }
    const run = this.#run;
    if (!run) {
      if (turn) this.#set({ status: 'ready' });
      return;
    }
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

  /** Answer, tools, answer, ... until an answer calls no tool, a call waits for a human, or maxSteps. */
  async #runTurn(): Promise<void> {
    const turn: Turn = { stopped: false, abort: new AbortController() };
    this.#turn = turn;
    try {
      for (;;) {
        const answer = await this.#answer();
        if (turn.stopped || !answer || !wantsTools(answer)) return;
        await this.#runTools(turn, answer.id);
        if (turn.stopped) return;
        if (!this.#canContinue(answer.id)) {
          this.#set({ status: 'ready' });
          return;
        }
        this.#set({ status: 'submitted' });
      }
    } finally {
      // Synchronous with the last check above: an addToolResult after it starts its own turn.
      if (this.#turn === turn) this.#turn = null;
    }
  }

  /** Every call of the message answered, the message still the last one, and steps left. */
  #canContinue(messageId: string): boolean {
    const messages = this.#state.messages;
    const message = messages.at(-1);
    if (message?.id !== messageId || !(message.toolCalls ?? []).every((c) => ANSWERED.has(c.state))) return false;
    return stepsSinceUser(messages) < (this.#options.maxSteps ?? DEFAULT_MAX_STEPS);
  }

  /** Runs the message's calls that have an `execute`, all at once; stop() leaves their results to land later. */
  async #runTools(turn: Turn, messageId: string): Promise<void> {
    const tools = this.#options.tools ?? {};
    const calls = this.#state.messages.find((m) => m.id === messageId)?.toolCalls ?? [];
    const runs = calls
      .filter((call) => call.state === 'call' && tools[call.name]?.execute)
      .map(async (call) => {
        try {
          const result = await tools[call.name]!.execute!(call.args, { toolCallId: call.id, signal: turn.abort.signal });
          this.#patchCall(messageId, call.id, { state: 'result', result });
        } catch (error) {
          this.#patchCall(messageId, call.id, { state: 'error', error: error instanceof Error ? error.message : String(error) });
        }
      });
    if (runs.length === 0) return;
    const stopped = new Promise<void>((resolve) => turn.abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([Promise.all(runs), stopped]);
  }

  /** One answer: chat.start, its first events, then chat.stream. Resolves with the assistant message when it ends. */
  async #answer(): Promise<KeyrackMessage | undefined> {
    const request = this.#request();
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const run: Run = { assistantId: nextId('assistant'), seen: new Set(), callAt: new Map(), resumes: 0, stopped: false, settle };
    this.#run = run;

    let first: readonly TrackedStreamEvent[];
    try {
      const started = await this.#options.transport.start(request);
      run.streamId = started.streamId;
      first = started.events ?? [];
    } catch (error) {
      if (!run.stopped) this.#fail(run, toKeyrackError(error));
      await settled;
      return this.#assistant(run);
    }
    if (run.stopped) {
      // Stopped while the gateway was accepting the request: attach and leave at once, so the
      // gateway sees the last subscriber go and cancels the upstream call.
      this.#options.transport.stream({ streamId: run.streamId }, { onEvent() {}, onError() {}, onComplete() {} })();
      await settled;
      return this.#assistant(run);
    }
    // The events chat.start brought (the first text, usually) show now; the stream resumes
    // after the last of them. If they hold the end, the answer is over without a stream.
    for (const tracked of first) this.#onEvent(run, tracked);
    if (this.#run === run) this.#open(run);
    await settled;
    return this.#state.status === 'error' ? undefined : this.#assistant(run);
  }

  #request(): ChatRequest {
    const { model, tools, request } = this.#options;
    const messages = this.#state.messages;
    const declared = Object.entries(tools ?? {}).map(([name, t]) => ({
      type: 'function' as const,
      name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      ...(t.parameters !== undefined ? { parameters: t.parameters } : {}),
    }));
    const { toolChoice, ...rest } = request ?? {};
    const forced = toolChoice !== undefined && toolChoice !== 'auto' && toolChoice !== 'none';
    const choice = forced && stepsSinceUser(messages) > 0 ? 'auto' : toolChoice;
    return {
      ...(rest as Omit<ChatRequest, 'model' | 'messages'>),
      model,
      messages: toRequestMessages(messages),
      ...(declared.length > 0 ? { tools: declared } : {}),
      ...(choice !== undefined ? { toolChoice: choice } : {}),
    };
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
      case 'reasoning': {
        const reasoning = (this.#assistant(run)?.reasoning ?? '') + event.text;
        this.#patchAssistant(run, { reasoning });
        if (this.#state.status !== 'streaming') this.#set({ status: 'streaming' });
        return;
      }
      case 'tool_call_delta': {
        const calls = [...(this.#assistant(run)?.toolCalls ?? [])];
        const at = run.callAt.get(event.index);
        if (at === undefined) {
          run.callAt.set(event.index, calls.length);
          // The first fragment names the call; an id only a later fragment brings replaces this one.
          calls.push({ id: event.id ?? `call_${event.index}`, name: event.name ?? '', argumentsText: event.argumentsDelta, state: 'partial' });
        } else {
          const call = calls[at]!;
          calls[at] = { ...call, ...(event.id ? { id: event.id } : {}), ...(event.name ? { name: event.name } : {}), argumentsText: call.argumentsText + event.argumentsDelta };
        }
        this.#patchAssistant(run, { toolCalls: calls });
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
    const message = this.#assistant(run);
    if (message) {
      const toolCalls = message.toolCalls ? completeCalls(message.toolCalls, this.#options.tools ?? {}) : undefined;
      this.#patchAssistant(run, { finishReason, ...(toolCalls ? { toolCalls } : {}) });
    }
    const finished = this.#assistant(run);
    // Tools run next: still busy, not ready.
    this.#end(run, { status: finished && wantsTools(finished) ? 'submitted' : 'ready' });
    if (finished) this.#options.onFinish?.(finished);
  }

  #fail(run: Run, error: KeyrackError): void {
    const message = this.#assistant(run);
    // Keep a partial answer (marked), drop an empty placeholder.
    if (message && message.content === '' && !message.reasoning && !message.toolCalls) {
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

  /** A call's outcome; ignored when the conversation no longer holds it (setMessages). */
  #patchCall(messageId: string, callId: string, patch: Partial<KeyrackToolCall>): void {
    let found = false;
    const messages = this.#state.messages.map((m) => {
      if (m.id !== messageId || !m.toolCalls) return m;
      found = true;
      return { ...m, toolCalls: m.toolCalls.map((c) => (c.id === callId ? { ...c, ...patch } : c)) };
    });
    if (found) this.#set({ messages });
  }

  #set(patch: Partial<ChatSnapshot>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of this.#listeners) listener();
  }
}

/** An answer that ended with complete calls asks for their results (finishReason tool_calls; some providers say stop). */
function wantsTools(message: KeyrackMessage): boolean {
  return (message.finishReason === 'tool_calls' || message.finishReason === 'stop') && (message.toolCalls ?? []).some((c) => c.state !== 'partial');
}

/** Answers since the last user message: the steps this turn took. */
function stepsSinceUser(messages: readonly KeyrackMessage[]): number {
  let steps = 0;
  for (let i = messages.length - 1; i >= 0 && messages[i]!.role !== 'user'; i -= 1) if (messages[i]!.role === 'assistant') steps += 1;
  return steps;
}

/** At the end of an answer its calls are whole: parsed, or an error the model gets back. */
function completeCalls(calls: readonly KeyrackToolCall[], tools: KeyrackTools): KeyrackToolCall[] {
  return calls.map((call) => {
    if (call.state !== 'partial') return call;
    if (!Object.hasOwn(tools, call.name)) return { ...call, state: 'error', error: `no tool named ${call.name}` };
    try {
      return { ...call, state: 'call', args: call.argumentsText.trim() === '' ? {} : (JSON.parse(call.argumentsText) as unknown) };
    } catch {
      return { ...call, state: 'error', error: 'the arguments are not valid JSON' };
    }
  });
}

function settleUnanswered(messages: readonly KeyrackMessage[]): readonly KeyrackMessage[] {
  if (!messages.some((m) => m.toolCalls?.some((c) => c.state === 'call'))) return messages;
  return messages.map((m) =>
    m.toolCalls?.some((c) => c.state === 'call') ? { ...m, toolCalls: m.toolCalls.map((c) => (c.state === 'call' ? { ...c, state: 'error' as const, error: UNANSWERED } : c)) } : m,
  );
}

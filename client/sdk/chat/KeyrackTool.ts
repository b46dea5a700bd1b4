import type { JsonObject } from '../../../shared';

/** What a tool's `execute` gets besides its arguments. */
export interface ToolExecuteContext {
  /** The id of the call being answered. */
  toolCallId: string;
  /** Aborted by stop(), setMessages() or unmounting: a long tool should give up then. */
  signal: AbortSignal;
}

/**
 * A function the model may call, as `useChat({ tools })` declares it (the AI SDK's shape). With
 * `execute`, the controller runs it in the browser and sends its result back on its own; without,
 * the call waits for `addToolResult` (a human in the loop, or the app doing it elsewhere).
 * `args` is the model's JSON, parsed but not checked against `parameters`: validate it in
 * `execute` if the tool cares (a throw becomes the call's error, sent back to the model).
 */
export interface KeyrackTool<Args = any, Result = unknown> {
  description?: string;
  /** JSON schema of the arguments (an object schema); absent = no arguments. */
  parameters?: JsonObject;
  execute?(args: Args, context: ToolExecuteContext): Result | Promise<Result>;
}

/** Tools by function name (1-64 letters, digits, _ or -). */
export type KeyrackTools = Record<string, KeyrackTool>;

/** Declares one tool with typed arguments: `tool<{ a: number }>({ parameters, execute: ({ a }) => a })`. */
export function tool<Args = unknown, Result = unknown>(definition: KeyrackTool<Args, Result>): KeyrackTool<Args, Result> {
  return definition;
}

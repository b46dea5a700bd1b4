import type { ChatMessage, UserContentPart } from '../../../shared';
import { TOKENS_PER_IMAGE } from '../../business/countPromptTokens';
import type { AnthropicCountTokensRequest, AnthropicWireBlock } from './anthropicWire';

/**
 * A Messages request's prompt as the gateway's own messages, for the prompt limits
 * (checkPrompt) and the budget's bound (promptTokensAtMost, maxCost): counted by the same rules
 * as every other chat (issue 21). Only counted, never sent: the request itself goes to Anthropic
 * as the client wrote it.
 *
 * What counts: the system prompt; every text, thinking (and its signature: Anthropic does not
 * bill it, so it errs high), tool call input and tool result; text documents and search
 * results; the tool definitions (their JSON is part of the prompt Anthropic bills). Each image
 * counts TOKENS_PER_IMAGE; each PDF or URL document TOKENS_PER_DOCUMENT. Server-tool blocks
 * (web search results, code execution output) count as their JSON.
 */

/**
 * What a PDF (or a document by URL) counts for. Anthropic bills a PDF page as its text plus an
 * image (1,500-3,000 tokens a page); its page count is not known without reading it. A fixed
 * stand-in of about five pages, like TOKENS_PER_IMAGE for images: the bytes of a base64 PDF
 * are no measure of its tokens.
 */
export const TOKENS_PER_DOCUMENT = 10 * TOKENS_PER_IMAGE;
const IMAGES_PER_DOCUMENT = TOKENS_PER_DOCUMENT / TOKENS_PER_IMAGE;

/** Stands for an image in a counted message: only its presence is counted, never its URL. */
const COUNTED_IMAGE: UserContentPart = { type: 'image', url: 'data:image/png;base64,AA==' };

export function anthropicPromptMessages(req: Pick<AnthropicCountTokensRequest, 'system' | 'messages' | 'tools'>): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (req.system !== undefined) {
    const text = typeof req.system === 'string' ? req.system : req.system.map((b) => b.text).join('\n');
    out.push({ role: 'system', content: text });
  }
  if (req.tools && req.tools.length > 0) out.push({ role: 'system', content: JSON.stringify(req.tools) });
  for (const message of req.messages) {
    if (typeof message.content === 'string') {
      out.push({ role: 'user', content: message.content });
      continue;
    }
    const parts: UserContentPart[] = [];
    for (const block of message.content) addBlock(block, parts);
    out.push({ role: 'user', content: parts.length > 0 ? parts : '' });
  }
  return out;
}

function addBlock(block: AnthropicWireBlock, parts: UserContentPart[]): void {
  const text = (value: string) => void parts.push({ type: 'text', text: value });
  switch (block.type) {
    case 'text':
      return text(block.text);
    case 'image':
      return void parts.push(COUNTED_IMAGE);
    case 'document':
      if (block.source.type === 'text') return text(block.source.data);
      if (block.source.type === 'content') {
        const content = block.source.content;
        return typeof content === 'string' ? text(content) : text(JSON.stringify(content));
      }
      for (let i = 0; i < IMAGES_PER_DOCUMENT; i++) parts.push(COUNTED_IMAGE);
      return;
    case 'search_result':
      return text(`${block.title} ${block.source} ${block.content.map((b) => b.text).join(' ')}`);
    case 'thinking':
      return text(block.thinking + block.signature);
    case 'redacted_thinking':
      return text(block.data);
    case 'tool_use':
      return text(block.name + JSON.stringify(block.input ?? {}));
    case 'tool_result':
      if (block.content === undefined) return;
      if (typeof block.content === 'string') return text(block.content);
      for (const inner of block.content) {
        if (inner.type === 'text' || inner.type === 'image' || inner.type === 'document' || inner.type === 'search_result') addBlock(inner as AnthropicWireBlock, parts);
        else text(JSON.stringify(inner));
      }
      return;
    default:
      return text(JSON.stringify(block));
  }
}

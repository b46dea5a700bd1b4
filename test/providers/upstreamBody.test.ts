import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkHandlerFailure, upstreamBody } from '../../server/providers/http/upstreamBody';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (chunk: Uint8Array) => new TextDecoder().decode(chunk);

describe('upstreamBody(...).each over a Node stream (the undici transport)', () => {
  it("holds the body while the handler's promise is pending: every chunk arrives, in order, before the end", async () => {
    const stream = new PassThrough();
    const seen: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const done = upstreamBody(stream).each((chunk) => {
      seen.push(text(chunk));
      return seen.length === 1 ? held : undefined;
    }, () => false);
    stream.write(bytes('a'));
    stream.end(bytes('b'));
    // The end has arrived while the first chunk's promise holds: nothing resolves yet.
    let finished = false;
    void done.then(() => (finished = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(finished).toBe(false);
    expect(seen).toEqual(['a']);
    release();
    await done;
    expect(seen).toEqual(['a', 'b']);
  });

  it('stops after the chunk that makes stop() true, and hands on what the handler threw as a ChunkHandlerFailure', async () => {
    const stream = new PassThrough();
    const seen: string[] = [];
    const stopped = upstreamBody(stream).each((chunk) => void seen.push(text(chunk)), () => seen.length === 1);
    stream.write(bytes('first'));
    await stopped;
    stream.write(bytes('second'));
    expect(seen).toEqual(['first']);

    const failing = new PassThrough();
    const boom = new Error('reader failed');
    const failed = upstreamBody(failing).each(() => {
      throw boom;
    }, () => false);
    failing.write(bytes('x'));
    const error = await failed.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChunkHandlerFailure);
    expect((error as ChunkHandlerFailure).cause).toBe(boom);
  });

  it('rejects with a premature close when the stream is destroyed before its end', async () => {
    const stream = new PassThrough();
    const reading = upstreamBody(stream).each(() => undefined, () => false);
    stream.write(bytes('part'));
    stream.destroy();
    await expect(reading).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });
});

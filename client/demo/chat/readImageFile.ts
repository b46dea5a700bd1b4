import { IMAGE_MEDIA_TYPES, MAX_IMAGE_DATA_URL_CHARS } from '../../../shared';

/**
 * The largest image the demo attaches: the bytes whose data URL fits shared/chat.ts's
 * MAX_IMAGE_DATA_URL_CHARS (base64 is a third larger than the bytes), so the gateway never
 * refuses what the composer took.
 */
export const MAX_DEMO_IMAGE_BYTES = Math.floor((MAX_IMAGE_DATA_URL_CHARS - 'data:image/jpeg;base64,'.length) / 4) * 3;

/** A data URL's length for `bytes` of image: base64 plus its `data:<type>;base64,` head. */
function dataUrlChars(bytes: number, type: string): number {
  return `data:${type};base64,`.length + 4 * Math.ceil(bytes / 3);
}

/** Reads a picked file as a data URL, or says why it cannot be attached. */
export async function readImageFile(file: File): Promise<{ ok: true; url: string } | { ok: false; reason: string }> {
  if (!(IMAGE_MEDIA_TYPES as readonly string[]).includes(file.type)) return { ok: false, reason: `${file.name}: only PNG, JPEG, GIF or WebP images` };
  if (file.size > MAX_DEMO_IMAGE_BYTES || dataUrlChars(file.size, file.type) > MAX_IMAGE_DATA_URL_CHARS) {
    return { ok: false, reason: `${file.name}: at most ${(MAX_DEMO_IMAGE_BYTES / 1024 / 1024).toFixed(1)} MiB` };
  }
  const url = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error('could not read the file'));
    reader.readAsDataURL(file);
  });
  return { ok: true, url };
}

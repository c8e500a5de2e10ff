// Images attached in the chat page: read in the browser, downscaled, encoded as data URIs.
//
// Each image gets two copies: `full`, what is sent (the longest side at most MAX_SIDE pixels, so
// a phone photo does not become a 10 MB request), and `thumb`, a small one (KEEP_SIDE) shown in
// the conversation and kept in localStorage, whose quota (a few MB per site) full-size images
// would fill in a handful of messages. Small files that need no scaling are sent as they are
// (their own bytes, no re-encoding), and a small enough one is its own thumbnail.

export const MAX_SIDE = 1536;          // longest side of an image as sent
export const KEEP_SIDE = 384;          // longest side of the copy kept with the chat
const AS_IS_MAX_BYTES = 1024 * 1024;   // a file this small, not scaled, is sent unchanged
const THUMB_AS_IS_MAX_BYTES = 48 * 1024;
const AS_IS_TYPES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
const JPEG_QUALITY = 0.9;
const THUMB_QUALITY = 0.8;

// Only base64 image data URIs are rendered or sent (stored chats are read back from localStorage).
export function isImageDataUri(url) {
  return typeof url === "string" && /^data:image\/[a-z0-9.+-]+;base64,[a-z0-9+/=]+$/i.test(url);
}

function readDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("the file cannot be read"));
    reader.readAsDataURL(file);
  });
}

// The bitmap scaled so its longest side is at most `side`, as a JPEG data URI (transparent
// areas on white: JPEG has no alpha, and black would hide dark drawings).
function encodeScaled(bitmap, side, quality) {
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", quality);
}

// A File (from the picker, a paste or a drop) as {name, full, thumb, width, height}.
export async function prepareImage(file) {
  if (!file.type.startsWith("image/")) throw new Error("not an image file");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error("this browser cannot read it as an image");
  }
  try {
    const { width, height } = bitmap;
    const longest = Math.max(width, height);
    const asIs = longest <= MAX_SIDE && file.size <= AS_IS_MAX_BYTES && AS_IS_TYPES.has(file.type);
    const full = asIs ? await readDataUri(file) : encodeScaled(bitmap, MAX_SIDE, JPEG_QUALITY);
    const thumb = asIs && longest <= KEEP_SIDE && file.size <= THUMB_AS_IS_MAX_BYTES
      ? full : encodeScaled(bitmap, KEEP_SIDE, THUMB_QUALITY);
    if (!isImageDataUri(full)) throw new Error("the file cannot be read as an image");
    return { name: file.name || "pasted image", full, thumb, width, height };
  } finally {
    bitmap.close();
  }
}

// The image files among those given (a drop or paste may carry text or other files too).
export function imageFiles(files) {
  return [...(files || [])].filter((f) => f.type.startsWith("image/"));
}

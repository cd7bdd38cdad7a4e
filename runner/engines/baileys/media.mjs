// Received files for the Baileys worker (host.mjs): what a media message says of its file, and
// its download from the media host, checked and decrypted as WhatsApp clients do.
//
// Why not Baileys' downloadContentFromMessage: it builds `https://<host><directPath>` (no other
// scheme, so no loopback fake in tests), and its downloadEncryptedContent neither checks the
// file's MAC and hashes nor bounds the size. Here the host is configured (`media_url`, default
// WhatsApp's https://mmg.whatsapp.net; the message's own `url` is never followed), the keys come
// from Baileys' getMediaKeys (HKDF of the media key), and the file is refused unless its
// HMAC-SHA256 (first 10 bytes, over iv + ciphertext), its encrypted and its plain SHA-256 match.

import { createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const { getMediaKeys } = baileys

export const DEFAULT_MEDIA_URL = 'https://mmg.whatsapp.net'
const DOWNLOAD_TIMEOUT_MS = 60_000
const MAC_BYTES = 10
// message field → the media type of its HKDF info ("WhatsApp Image Keys", …)
const MEDIA_FIELDS = {
  imageMessage: 'image', videoMessage: 'video', audioMessage: 'audio', documentMessage: 'document', stickerMessage: 'sticker'
}

const b64 = (v) => (v == null || v.length === 0 ? null : Buffer.from(v).toString('base64'))

/** The file a message carries, as the runner's `download` op takes it back; null if none. */
export function mediaOf (msg) {
  for (const [field, type] of Object.entries(MEDIA_FIELDS)) {
    const m = msg?.[field]
    if (!m) continue
    if (!m.mediaKey || !m.directPath) return null
    return {
      type,
      media_key: b64(m.mediaKey),
      direct_path: m.directPath,
      file_enc_sha256: b64(m.fileEncSha256),
      file_sha256: b64(m.fileSha256),
      size: Number(m.fileLength ?? 0) || null,
      mime_type: m.mimetype ?? null,
      filename: m.fileName ?? null
    }
  }
  return null
}

const fail = (code, message) => Object.assign(new Error(message), { code })

/** Read at most `limit` bytes of a response body. */
async function readBounded (response, limit) {
  const chunks = []; let size = 0
  for await (const chunk of response.body) {
    size += chunk.length
    if (size > limit) throw fail('payload_too_large', `the file has more than ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

const same = (a, b64text) => {
  const b = Buffer.from(b64text, 'base64')
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * The plain bytes of a received file (at most `limit`). Errors carry `code`: not_found (the host
 * no longer has it), payload_too_large, invalid (a bad reference), corrupt (fails its MAC or
 * hashes: a damaged transfer, worth a retry like dependency_unavailable).
 */
export async function download (ref, mediaUrl, limit) {
  const base = new URL(mediaUrl || DEFAULT_MEDIA_URL)
  const path = String(ref?.direct_path ?? '')
  const url = new URL(path, base)
  if (!path.startsWith('/') || url.origin !== base.origin) throw fail('invalid', 'the media path leaves the media host')
  if (!MEDIA_FIELDS[`${ref.type}Message`]) throw fail('invalid', `unknown media type ${ref.type}`)
  const { iv, cipherKey, macKey } = await getMediaKeys(Buffer.from(ref.media_key ?? '', 'base64'), ref.type)
  let response
  try {
    response = await fetch(url, { headers: { Origin: 'https://web.whatsapp.com' }, signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) })
  } catch (e) {
    throw fail('dependency_unavailable', `the media host is unreachable: ${e?.cause?.code ?? e?.message ?? e}`)
  }
  if (response.status === 404 || response.status === 410) throw fail('not_found', 'the media host no longer has the file')
  if (!response.ok) throw fail('dependency_unavailable', `the media host answered HTTP ${response.status}`)
  // AES-CBC adds at most one block of padding; the MAC follows the ciphertext.
  const file = await readBounded(response, limit + 16 + MAC_BYTES)
  if (ref.file_enc_sha256 && !same(createHash('sha256').update(file).digest(), ref.file_enc_sha256)) {
    throw fail('corrupt', 'the downloaded file does not match its encrypted SHA-256')
  }
  const ciphertext = file.subarray(0, file.length - MAC_BYTES)
  const mac = createHmac('sha256', macKey).update(iv).update(ciphertext).digest().subarray(0, MAC_BYTES)
  if (file.length <= MAC_BYTES || !timingSafeEqual(mac, file.subarray(file.length - MAC_BYTES))) {
    throw fail('corrupt', 'the downloaded file fails its MAC')
  }
  let plain
  try {
    const aes = createDecipheriv('aes-256-cbc', cipherKey, iv)
    plain = Buffer.concat([aes.update(ciphertext), aes.final()])
  } catch {
    throw fail('corrupt', 'the downloaded file does not decrypt')
  }
  if (ref.file_sha256 && !same(createHash('sha256').update(plain).digest(), ref.file_sha256)) {
    throw fail('corrupt', 'the decrypted file does not match its SHA-256')
  }
  if (plain.length > limit) throw fail('payload_too_large', `the file has more than ${limit} bytes`)
  return plain
}

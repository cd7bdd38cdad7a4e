// The fake's media host (server.mjs): a contact's media message carries a file encrypted as
// WhatsApp encrypts it (a random 32-byte media key, HKDF-expanded by Baileys' getMediaKeys into
// iv, cipher key and MAC key; AES-256-CBC, then the first 10 bytes of HMAC-SHA256(iv +
// ciphertext)), served at its directPath (`GET /mms/<type>/<token>`) with the faults a download
// can meet: some 503s first, or a file that is gone (404).

import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const { getMediaKeys } = baileys

export const MEDIA_PREFIX = '/mms/'
// wagate's kind → the message field and the media type of its keys
const KINDS = {
  image: ['imageMessage', 'image'],
  video: ['videoMessage', 'video'],
  audio: ['audioMessage', 'audio'],
  voice: ['audioMessage', 'audio'],
  document: ['documentMessage', 'document'],
  sticker: ['stickerMessage', 'sticker']
}

/** `data` encrypted as WhatsApp's media servers hold it, with the facts the message carries. */
export async function encryptMedia (data, type) {
  const mediaKey = randomBytes(32)
  const { iv, cipherKey, macKey } = await getMediaKeys(mediaKey, type)
  const aes = createCipheriv('aes-256-cbc', cipherKey, iv)
  const ciphertext = Buffer.concat([aes.update(data), aes.final()])
  const mac = createHmac('sha256', macKey).update(iv).update(ciphertext).digest().subarray(0, 10)
  const file = Buffer.concat([ciphertext, mac])
  return {
    mediaKey,
    file,
    fileSha256: createHash('sha256').update(data).digest(),
    fileEncSha256: createHash('sha256').update(file).digest(),
    fileLength: data.length
  }
}

export class MediaHost {
  constructor () { this.files = new Map(); this.downloads = 0 }
  reset () { this.files.clear(); this.downloads = 0 }

  /**
   * The message content of a contact's media message ({kind, data_b64, mime_type, filename,
   * caption, fail_first, gone}), its file put on this host.
   */
  async message ({ kind, data_b64: data64, mime_type: mimetype, filename, caption, fail_first: failFirst, gone }) {
    const found = KINDS[kind]
    if (!found) throw Object.assign(new Error(`no media kind ${kind}`), { status: 400 })
    const [field, type] = found
    const enc = await encryptMedia(Buffer.from(String(data64 ?? ''), 'base64'), type)
    const directPath = `${MEDIA_PREFIX}${type}/${randomBytes(16).toString('hex')}`
    this.files.set(directPath, { file: enc.file, failuresLeft: Number(failFirst ?? 0), gone: Boolean(gone) })
    const media = {
      // WhatsApp's own URL form: a client must not follow it (the host is configured).
      url: `https://mmg.whatsapp.net${directPath}?_nc_fake=1`,
      directPath,
      mediaKey: enc.mediaKey,
      mimetype,
      fileSha256: enc.fileSha256,
      fileEncSha256: enc.fileEncSha256,
      fileLength: enc.fileLength,
      mediaKeyTimestamp: Math.floor(Date.now() / 1000)
    }
    if (caption && (field === 'imageMessage' || field === 'videoMessage' || field === 'documentMessage')) media.caption = caption
    if (field === 'documentMessage') media.fileName = filename ?? 'file'
    if (kind === 'voice') media.ptt = true
    return { [field]: media }
  }

  /** GET <directPath>: the encrypted file. */
  serve (req, res) {
    const entry = this.files.get(new URL(req.url, 'http://fake').pathname)
    if (!entry || entry.gone) return res.writeHead(404).end()
    if (entry.failuresLeft > 0) { entry.failuresLeft--; return res.writeHead(503).end() }
    this.downloads++
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': entry.file.length }).end(entry.file)
  }
}

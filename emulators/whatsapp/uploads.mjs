// The fake's upload server: where a device uploads the encrypted files of its media messages
// (Baileys POSTs to https://<media_conn host>/mms/<type>/<enc sha256>), and where a recipient's
// copy is read back and decrypted (HKDF media keys, AES-256-CBC, the last 10 bytes a MAC). The
// files contacts send are on the media host (media.mjs), which Baileys reads over http.
//
// Baileys always uploads over https, so this server speaks TLS with a certificate the test kit
// makes (tests/engine_contract/baileys_kit.py) and hands the workers as NODE_EXTRA_CA_CERTS.

import { createServer } from 'node:https'
import { createDecipheriv, createHash } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const { getMediaKeys } = baileys

export class UploadServer {
  constructor ({ cert, key }) {
    this.files = new Map() // direct path -> encrypted bytes
    this.server = createServer({ cert, key }, (req, res) => this.handle(req, res))
  }

  listen () {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.host = `127.0.0.1:${this.server.address().port}`
      resolve(this)
    }))
  }

  reset () { this.files.clear() }

  handle (req, res) {
    const path = req.url.split('?')[0]
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      if (req.method === 'POST' && path.startsWith('/mms/')) {
        const directPath = `/v/t62.fake${path}`
        this.files.set(directPath, Buffer.concat(chunks))
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ url: `https://${this.host}${directPath}`, direct_path: directPath }))
      }
      const file = this.files.get(path)
      if (req.method === 'GET' && file) { res.writeHead(200); return res.end(file) }
      res.writeHead(404).end()
    })
  }

  /** The answer to a device's `media_conn` iq: upload here. */
  conn () {
    return { tag: 'media_conn', attrs: { auth: 'fake-media-auth', ttl: '3600' }, content: [{ tag: 'host', attrs: { hostname: this.host } }] }
  }

  /** A received media message's file, decrypted with its media key: {sha256, size} or {error}. */
  async plaintext (media, type) {
    const file = this.files.get(media.directPath)
    if (!file) return { error: `no upload at ${media.directPath}` }
    const { iv, cipherKey } = await getMediaKeys(media.mediaKey, type)
    const decipher = createDecipheriv('aes-256-cbc', cipherKey, iv)
    const data = Buffer.concat([decipher.update(file.subarray(0, -10)), decipher.final()])
    return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length, head: data.subarray(0, 12).toString('hex') }
  }
}

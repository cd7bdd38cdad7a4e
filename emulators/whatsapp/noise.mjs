// The server half of WhatsApp's Noise XX handshake and transport cipher, for the fake
// (server.mjs), from Baileys' own primitives so the wire is the library's.

import * as baileys from '@whiskeysockets/baileys'

const { proto, encodeBinaryNode, decodeBinaryNode, Curve, aesEncryptGCM, aesDecryptGCM, hkdf, sha256, NOISE_MODE, NOISE_WA_HEADER } = baileys

// WhatsApp's certificate chain as captured by crabline (MIT); Baileys verifies its signatures.
const CERT_CHAIN = Buffer.from('CncKMwjjAhADGiCRKg7Kg1iu4CSulwLBaxX51Tefw6VXGgZqcr5OEbXIRiDQ04bOBijQjZ/TBhJA34Bj82jAHhLpCWBNVBlGnFDieamd8+138S57uMt9ke9mrn5r4+VepwBPKEgHjob6bR70rlCmWDkxZv+CfVjIAxJ2CjIIAxAAGiAcUamsMDmUxsjQuS6hh4pTNHZZnMWZ++o1mX2aqQzOYiCAka6+Bij/3rfcBhJAJw8pRkhTn+1IcOJQVN1OlZg6uikYnCumyO7acFVVX3U3QPXsGSq2TCbCbWrebSC593Su43EgprIDlfU8ZgWFBw==', 'base64')
const EMPTY = Buffer.alloc(0)
const iv = (n) => { const b = Buffer.alloc(12); b.writeUInt32BE(n, 8); return b }
/** A frame on the socket: a 3-byte big-endian length, then the data. */
export const frame = (data) => {
  const out = Buffer.alloc(3 + data.length)
  out.writeUIntBE(data.length, 0, 3)
  Buffer.from(data).copy(out, 3)
  return out
}

/** The server half of WhatsApp's Noise XX handshake, then the transport cipher. */
export class Noise {
  constructor () {
    const mode = Buffer.from(NOISE_MODE)
    this.hash = mode.length === 32 ? mode : sha256(mode)
    this.salt = this.hash; this.key = this.hash; this.counter = 0
    this.mix(NOISE_WA_HEADER)
    this.buffer = EMPTY; this.intro = true; this.enc = null; this.dec = null; this.r = 0; this.w = 0
  }
  mix (data) { this.hash = sha256(Buffer.concat([this.hash, Buffer.from(data)])) }
  hk (data) { const k = hkdf(Buffer.from(data), 64, { salt: this.salt, info: '' }); return [k.subarray(0, 32), k.subarray(32)] }
  mixKey (data) { const [w, r] = this.hk(data); this.salt = w; this.key = r; this.counter = 0 }
  encrypt (p) { const c = aesEncryptGCM(Buffer.from(p), this.key, iv(this.counter++), this.hash); this.mix(c); return c }
  decrypt (c) { const p = aesDecryptGCM(Buffer.from(c), this.key, iv(this.counter++), this.hash); this.mix(c); return p }
  frames (data) {
    let chunk = Buffer.from(data)
    if (this.intro) { chunk = chunk.subarray(4); this.intro = false }
    this.buffer = Buffer.concat([this.buffer, chunk])
    const out = []
    while (this.buffer.length >= 3) {
      const size = this.buffer.readUIntBE(0, 3)
      if (this.buffer.length < size + 3) break
      out.push(this.buffer.subarray(3, size + 3)); this.buffer = this.buffer.subarray(size + 3)
    }
    return out
  }
  serverHello (data) {
    const { clientHello } = proto.HandshakeMessage.decode(data)
    this.mix(clientHello.ephemeral)
    this.eph = Curve.generateKeyPair(); const stat = Curve.generateKeyPair()
    this.mix(this.eph.public)
    this.mixKey(Curve.sharedKey(this.eph.private, clientHello.ephemeral))
    const staticEnc = this.encrypt(stat.public)
    this.mixKey(Curve.sharedKey(stat.private, clientHello.ephemeral))
    const payload = this.encrypt(CERT_CHAIN)
    return frame(proto.HandshakeMessage.encode({ serverHello: { ephemeral: this.eph.public, static: staticEnc, payload } }).finish())
  }
  clientFinish (data) {
    const { clientFinish } = proto.HandshakeMessage.decode(data)
    const clientStatic = this.decrypt(clientFinish.static)
    this.mixKey(Curve.sharedKey(this.eph.private, clientStatic))
    const payload = proto.ClientPayload.decode(this.decrypt(clientFinish.payload))
    const [w, r] = this.hk(EMPTY); this.enc = r; this.dec = w
    return payload
  }
  encode (node) { return frame(aesEncryptGCM(encodeBinaryNode(node), this.enc, iv(this.w++), EMPTY)) }
  async decode (data) { return decodeBinaryNode(aesDecryptGCM(data, this.dec, iv(this.r++), EMPTY)) }
}

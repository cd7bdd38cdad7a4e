// Linking a device to an account, the phone's side: by QR (`scan`) or by pairing code
// (`confirmCode`, then the device's `codeFinish`), both ending in `link` (pair-success with an
// ADV-signed device identity). Methods of the fake (server.mjs mixes them into its class).

import { randomBytes } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const {
  proto, Curve, aesDecryptGCM, hkdf, hmacSign, WA_ADV_ACCOUNT_SIG_PREFIX, getBinaryNodeChild,
  derivePairingCodeKey, aesEncryptCTR, aesDecryptCTR
} = baileys

const S = 's.whatsapp.net'
const EMPTY = Buffer.alloc(0)
const now = () => Math.floor(Date.now() / 1000)

export const pairing = {
  /** The phone scans a QR: the linked device gets a signed identity and must restart. */
  scan (qr, phone) {
    const [ref, , identityB64, advB64] = qr.replace(/^.*#/, '').split(',')
    const conn = this.pairing.get(ref)
    if (!conn) throw new Error('no device shows this QR')
    this.link(conn, phone.replace(/^\+/, ''), Buffer.from(identityB64, 'base64'), Buffer.from(advB64, 'base64'))
  },

  /** The phone enters a pairing code: it unwraps the device's ephemeral key with it. */
  async confirmCode (code, phone) {
    const digits = phone.replace(/^\+/, '')
    const conn = [...this.pairing.values()].find((c) => c.codeHello?.digits === digits)
    if (!conn) throw new Error(`no device asked for a pairing code for ${phone}`)
    const wrapped = conn.codeHello.wrapped
    const key = await derivePairingCodeKey(code, wrapped.subarray(0, 32))
    const companionEph = aesDecryptCTR(wrapped.subarray(48, 80), key, wrapped.subarray(32, 48))
    const primaryEph = Curve.generateKeyPair()
    const salt = randomBytes(32); const ctrIv = randomBytes(16)
    const wrappedPrimary = Buffer.concat([salt, ctrIv, aesEncryptCTR(primaryEph.public, await derivePairingCodeKey(code, salt), ctrIv)])
    conn.codeHello = { ...conn.codeHello, primaryEph, companionEph }
    const account = this.account(digits)
    conn.send({ tag: 'notification', attrs: { from: S, type: 'link_code_companion_reg', id: `lc-${Date.now()}`, t: String(now()) },
      content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [
        { tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(conn.codeHello.ref) },
        { tag: 'primary_identity_pub', attrs: {}, content: account.identity.public },
        { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: wrappedPrimary }
      ] }] })
  },

  /** The device's companion_finish: the key bundle gives its identity and the ADV secret. */
  codeFinish (conn, reg) {
    const hello = conn.codeHello
    if (!hello?.primaryEph) throw new Error('companion_finish before the code was entered')
    const bundle = getBinaryNodeChild(reg, 'link_code_pairing_wrapped_key_bundle').content
    const shared = Curve.sharedKey(hello.primaryEph.private, hello.companionEph)
    const key = hkdf(shared, 32, { salt: bundle.subarray(0, 32), info: 'link_code_pairing_key_bundle_encryption_key' })
    const plain = aesDecryptGCM(bundle.subarray(44), key, bundle.subarray(32, 44), EMPTY)
    const clientIdentity = plain.subarray(0, 32); const random = plain.subarray(64, 96)
    const account = this.account(hello.digits)
    const identityShared = Curve.sharedKey(account.identity.private, clientIdentity)
    const adv = hkdf(Buffer.concat([shared, identityShared, random]), 32, { info: 'adv_secret' })
    this.link(conn, hello.digits, clientIdentity, adv)
  },

  link (conn, digits, clientIdentity, advSecret) {
    const account = this.account(digits)
    const device = account.next++
    account.devices.set(device, { removed: false })
    const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId: 1, timestamp: now(), keyIndex: device }).finish()
    const accountSignature = Curve.sign(account.identity.private, Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, deviceDetails, clientIdentity]))
    const details = proto.ADVSignedDeviceIdentity.encode({ details: deviceDetails, accountSignatureKey: account.identity.public, accountSignature }).finish()
    const hmac = hmacSign(details, advSecret)
    const identity = proto.ADVSignedDeviceIdentityHMAC.encode({ details, hmac }).finish()
    for (const [r, c] of this.pairing) if (c === conn) this.pairing.delete(r)
    conn.pairedAs = `${digits}:${device}@${S}`
    conn.send({
      tag: 'iq', attrs: { from: S, type: 'set', id: `pair-${device}` },
      content: [{ tag: 'pair-success', attrs: {}, content: [
        { tag: 'device-identity', attrs: {}, content: identity },
        { tag: 'platform', attrs: { name: 'android' } },
        { tag: 'device', attrs: { jid: conn.pairedAs, lid: `${this.lid(digits)}:${device}@lid` } }
      ] }]
    })
  }
}

// A virtual contact of the fake (server.mjs): its Signal identity, which the fake hands out as
// its pre-key bundle, and the sending half of its Signal sessions (libsignal), so a contact's
// message reaches a device encrypted as WhatsApp delivers it.

import * as baileys from '@whiskeysockets/baileys'
import libsignal from 'libsignal'

const { Curve, signedKeyPair, generateRegistrationId, getBinaryNodeChild, getBinaryNodeChildren, jidDecode, generateSignalPubKey } = baileys

/** A virtual contact's (or phone's) signal identity, so the client can encrypt to it. */
export function makeBundle () {
  const identity = Curve.generateKeyPair()
  return { identity, registrationId: generateRegistrationId(), signed: signedKeyPair(identity, 1), preKeyId: 1 }
}

/** One contact writing to devices: a session per device, built from the device's pre-key upload. */
export class SignalSender {
  constructor (bundle) {
    const sessions = new Map()
    this.sessions = sessions
    this.store = {
      getOurIdentity: async () => ({ privKey: Buffer.from(bundle.identity.private), pubKey: generateSignalPubKey(bundle.identity.public) }),
      getOurRegistrationId: async () => bundle.registrationId,
      isTrustedIdentity: async () => true,
      saveIdentity: async () => true,
      loadSession: async (id) => sessions.get(id),
      storeSession: async (id, record) => { sessions.set(id, record) }
    }
  }

  /**
   * `plaintext` for `deviceJid`, whose pre-keys are in `upload` (its `encrypt` iq): {type, body}.
   * A new session takes the one-time pre-key `takePreKey()` picks: each is good for one session.
   */
  async encrypt (deviceJid, upload, plaintext, takePreKey) {
    const value = (n, tag) => getBinaryNodeChild(n, tag).content
    const skey = getBinaryNodeChild(upload, 'skey')
    const d = jidDecode(deviceJid)
    const address = new libsignal.ProtocolAddress(d.user, d.device ?? 0)
    if (!this.sessions.has(address.toString())) {
      const keys = getBinaryNodeChildren(getBinaryNodeChild(upload, 'list'), 'key')
      const key = keys[takePreKey() % keys.length]
      await new libsignal.SessionBuilder(this.store, address).initOutgoing({
        registrationId: value(upload, 'registration').readUInt32BE(0),
        identityKey: generateSignalPubKey(value(upload, 'identity')),
        signedPreKey: { keyId: value(skey, 'id').readUIntBE(0, 3), publicKey: generateSignalPubKey(value(skey, 'value')), signature: value(skey, 'signature') },
        preKey: { keyId: value(key, 'id').readUIntBE(0, 3), publicKey: generateSignalPubKey(value(key, 'value')) }
      })
    }
    const { type, body } = await new libsignal.SessionCipher(this.store, address).encrypt(plaintext)
    return { type: type === 3 ? 'pkmsg' : 'msg', body: Buffer.from(body, 'binary') }
  }
}

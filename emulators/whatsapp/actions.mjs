// Chat actions at the fake (server.mjs mixes these methods into its class): what a contact sees
// of a device's messages — decrypted as the contact's phone would, so an edit (`edit="1"`,
// protocolMessage MESSAGE_EDIT) and a revoke (`edit="7"`, REVOKE) are recorded with their target
// and text — of its read receipts and presences (`receipt type=read`, `chatstate`), and a
// contact's own edits, revokes and removed reactions sent to a device. Also the privacy query
// Baileys' readMessages makes first.

import * as baileys from '@whiskeysockets/baileys'
import libsignal from 'libsignal'
import { SignalSender } from './contact.mjs'
import { seenOf } from './content.mjs'

const { proto, unpadRandomMax16, getBinaryNodeChild, getBinaryNodeChildren, jidDecode, generateSignalPubKey, normalizeMessageContent } = baileys

const S = 's.whatsapp.net'
const now = () => Math.floor(Date.now() / 1000)
const PRESENCE = { composing: 'typing', paused: 'paused' }

/** A decrypted message as wagate's kind and content (what server.mjs `received` lists). */
function describe (message) {
  const m = normalizeMessageContent(message) ?? {}
  const p = m.protocolMessage
  if (p?.type === 14) return { kind: 'edit', content: { message_id: p.key?.id, body: p.editedMessage?.conversation ?? p.editedMessage?.extendedTextMessage?.text ?? '' } }
  if (p?.type === 0) return { kind: 'revoke', content: { message_id: p.key?.id } }
  if (m.reactionMessage) return { kind: 'reaction', content: { message_id: m.reactionMessage.key?.id, emoji: m.reactionMessage.text ?? '' } }
  const text = m.conversation ?? m.extendedTextMessage?.text
  if (text != null) return { kind: 'text', content: { body: text } }
  return { kind: Object.keys(m)[0]?.replace(/Message$/, '') ?? 'unknown', content: {} }
}

export const actions = {
  /** The contact `jid` (user@server) as a Signal party: its bundle, its sessions. */
  contactSide (jid) {
    let sender = this.senders.get(jid)
    if (!sender) { sender = new SignalSender(this.bundle(jid)); this.senders.set(jid, sender) }
    const b = this.bundle(jid)
    // The receiving half: the signed pre-key the fake handed out in the contact's key bundle.
    Object.assign(sender.store, {
      loadSignedPreKey: async () => ({ privKey: Buffer.from(b.signed.keyPair.private), pubKey: generateSignalPubKey(b.signed.keyPair.public) }),
      loadPreKey: async () => undefined,
      removePreKey: async () => {}
    })
    return sender
  },

  /**
   * Decrypt, as the recipient `rcpt` (digits) would, the part of a device's message node meant
   * for it, and fill in `entry`'s kind and content. Runs on one chain: Signal sessions ratchet
   * in order.
   */
  describeInto (conn, node, rcpt, entry) {
    this.decrypting = (this.decrypting ?? Promise.resolve()).then(async () => {
      const participants = getBinaryNodeChild(node, 'participants')
      const targets = participants
        ? getBinaryNodeChildren(participants, 'to').map((t) => [t.attrs.jid, getBinaryNodeChild(t, 'enc')])
        : [[node.attrs.to, getBinaryNodeChild(node, 'enc')]]
      const mine = targets.find(([jid, enc]) => enc && this.pn(jid) === rcpt)
      if (!mine) return
      const [jid, enc] = mine
      // Baileys encrypts to the identity it fetched: the contact's LID's bundle once it knows
      // the mapping (usync), else the phone number's.
      const d = jidDecode(jid)
      const identity = [`${this.lid(rcpt)}@lid`, `${d.user}@${d.server}`].find((j) => this.bundles.has(j)) ?? `${d.user}@${d.server}`
      const from = jidDecode(conn.jid)
      const cipher = new libsignal.SessionCipher(this.contactSide(identity).store, new libsignal.ProtocolAddress(from.user, from.device ?? 0))
      const plain = enc.attrs.type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(enc.content) : await cipher.decryptWhisperMessage(enc.content)
      const message = proto.Message.decode(unpadRandomMax16(plain))
      Object.assign(entry, describe(message))
      entry.seen = await seenOf(message, this.uploads) // the content kinds' view (content.mjs)
    }).catch((e) => { entry.kind = 'undecrypted'; entry.error = String(e?.message ?? e) })
    return this.decrypting
  },

  /** A read receipt or a presence from a device: recorded on the other side of the chat. */
  chatAction (conn, node) {
    const rcpt = this.pn(node.attrs.to)
    const events = this.chatEvents.get(rcpt) ?? []
    if (node.tag === 'receipt') {
      if (node.attrs.type !== 'read' && node.attrs.type !== 'read-self') return
      const list = getBinaryNodeChild(node, 'list')
      const ids = [node.attrs.id, ...getBinaryNodeChildren(list, 'item').map((i) => i.attrs.id)]
      events.push({ kind: 'read', ids, from: conn.digits, ts: Date.now() / 1000 })
      conn.send({ tag: 'ack', attrs: { class: 'receipt', id: node.attrs.id, from: node.attrs.to, t: String(now()) } })
    } else {
      const child = Array.isArray(node.content) ? node.content[0] : undefined
      const state = child?.tag === 'composing' && child.attrs?.media === 'audio' ? 'recording' : PRESENCE[child?.tag]
      if (!state) return
      events.push({ kind: 'presence', state, from: conn.digits, ts: Date.now() / 1000 })
    }
    this.chatEvents.set(rcpt, events)
  },

  /** Baileys asks for the account's privacy settings before a read receipt: reads are shared. */
  privacy (conn, attrs) {
    conn.send({ tag: 'iq', attrs, content: [{ tag: 'privacy', attrs: {}, content: [{ tag: 'category', attrs: { name: 'readreceipts', value: 'all' } }] }] })
  },

  /** A contact edits, revokes or reacts to a message: a protocol/reaction message to `toPhone`. */
  async inboundChange (toPhone, sender, kind, content, waId) {
    const contact = sender.replace(/^\+/, '')
    const digits = toPhone.replace(/^\+/, '')
    const key = { remoteJid: `${digits}@${S}`, fromMe: false, id: content.message_id }
    const message = kind === 'edit'
      ? { protocolMessage: { key, type: 14, editedMessage: { conversation: content.body } } }
      : kind === 'revoke'
        ? { protocolMessage: { key, type: 0 } }
        : { reactionMessage: { key, text: content.emoji ?? '', senderTimestampMs: Date.now() } }
    return this.inbound(toPhone, contact, { message }, waId, 'pn', false)
  }
}

/** The control routes of this module (server.mjs adds them to its own). */
export const actionRoutes = (fake) => ({
  '/_fake/chat_events': ({ recipient }) => ({ events: fake.chatEvents.get(recipient.replace(/^\+/, '')) ?? [] }),
  '/_fake/inbound_change': async ({ to_phone: to, sender, kind, content, wa_id: id }) => ({ delivered: await fake.inboundChange(to, sender, kind, content, id) })
})

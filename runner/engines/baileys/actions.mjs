// Chat actions in the Baileys worker (host.mjs op `act`, the request runner/engines/chat_actions.py
// builds): an edit or a revoke is a message with its own caller-chosen id (sendMessage with
// {edit: key} / {delete: key}), acked by the server like a send, so a resend is deduplicated; a
// read receipt (readMessages, which honours the account's read-receipt privacy setting) and a
// presence (sendPresenceUpdate) have no ack of their own and count as done once written.

const PRESENCE = { typing: 'composing', recording: 'recording', paused: 'paused' }

/** The key of a message this session sent to `jid`. */
const ours = (jid, id) => ({ remoteJid: jid, id, fromMe: true })

/**
 * @param {object} session  host.mjs's Session (its `sock`, `connected` and `sendAcked`)
 * @param {object} req      {wa_id, to, kind, content, timeout_ms}
 * @param {(to: string) => string} toJid
 */
export async function act (session, { wa_id: waId, to, kind, content: c, timeout_ms: timeoutMs }, toJid) {
  const sock = session.sock
  if (!sock || !session.connected) return { ok: false, error: { permanent: false, message: 'not connected' } }
  const jid = toJid(to)
  const written = () => ({ ok: true, ts: Date.now() / 1000 })
  switch (kind) {
    case 'edit':
      return session.sendAcked(waId, jid, { text: String(c.body ?? ''), edit: ours(jid, c.message_id), linkPreview: null }, timeoutMs)
    case 'revoke':
      return session.sendAcked(waId, jid, { delete: ours(jid, c.message_id) }, timeoutMs)
    case 'read':
      await sock.readMessages((c.ids ?? []).map((id) => ({ remoteJid: c.chat, id, participant: c.sender ?? undefined, fromMe: false })))
      return written()
    case 'presence':
      if (!PRESENCE[c.state]) break
      await sock.sendPresenceUpdate(PRESENCE[c.state], jid)
      return written()
  }
  return { ok: false, error: { permanent: true, message: `not a chat action Baileys can do: ${kind} ${c?.state ?? ''}` } }
}

/**
 * An inbound protocol message that changes an earlier one, as wagate's kind and content: an edit
 * (`protocolMessage` MESSAGE_EDIT, 14) or a revoke (REVOKE, 0); null for anything else.
 */
export function changeOf (msg) {
  const p = msg?.protocolMessage
  if (!p?.key?.id) return null
  if (p.type === 14) {
    const edited = p.editedMessage ?? {}
    const body = edited.conversation ?? edited.extendedTextMessage?.text ?? edited.imageMessage?.caption ?? edited.videoMessage?.caption ?? ''
    return { kind: 'edit', content: { message_id: p.key.id, body } }
  }
  if (p.type === 0) return { kind: 'revoke', content: { message_id: p.key.id } }
  return null
}

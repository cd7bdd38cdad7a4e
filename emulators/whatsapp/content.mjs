// What a contact of the fake sees of a device's message, once actions.mjs (describeInto) has
// decrypted it with the contact's Signal session: summed up as the contract suite compares it on
// every engine — kind, text, mentions, link preview, poll, and for media the decrypted file's
// sha256 (uploads.mjs). A poll's messageSecret is kept so the contact can vote (polls.mjs).

/** What a contact reads of a decrypted message (a proto.Message), summed up; `media` (the
 * upload server) gives a media file's decrypted sha256. */
export async function seenOf (m, media) {
  const text = m.conversation ?? m.extendedTextMessage?.text
  if (text != null) {
    const ext = m.extendedTextMessage ?? {}
    const out = { kind: 'text', body: text, mentions: ext.contextInfo?.mentionedJid ?? [] }
    if (ext.title) out.preview = { title: ext.title, description: ext.description || null, url: ext.matchedText || null, thumbnail_bytes: ext.jpegThumbnail?.length ?? 0 }
    return out
  }
  const poll = m.pollCreationMessage ?? m.pollCreationMessageV3 ?? m.pollCreationMessageV2
  if (poll) {
    return {
      kind: 'poll', question: poll.name, options: poll.options.map((o) => o.optionName), selectable_count: poll.selectableOptionsCount,
      secret_b64: Buffer.from(m.messageContextInfo?.messageSecret ?? []).toString('base64')
    }
  }
  const file = async (msg, type) => (media && msg.directPath ? await media.plaintext(msg, type) : { error: 'no upload server' })
  if (m.stickerMessage) return { kind: 'sticker', mime_type: m.stickerMessage.mimetype, ...(await file(m.stickerMessage, 'sticker')) }
  if (m.audioMessage) return { kind: m.audioMessage.ptt ? 'voice' : 'audio', mime_type: m.audioMessage.mimetype, ...(await file(m.audioMessage, 'audio')) }
  for (const k of ['image', 'video', 'document']) {
    if (m[`${k}Message`]) return { kind: k, mime_type: m[`${k}Message`].mimetype, ...(await file(m[`${k}Message`], k)) }
  }
  return { kind: Object.keys(m).find((k) => m[k] != null && k !== 'messageContextInfo') ?? 'unknown' }
}

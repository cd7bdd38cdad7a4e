// The Baileys worker's (host.mjs) content kinds beyond plain text and media: mentions and link
// previews on text, voice notes (PTT), stickers, polls, and the decryption of poll votes.
//
// A poll's messageSecret (the key its votes are encrypted with) is derived from the device's
// identity key and the poll's WhatsApp id: HMAC-SHA256(identity private key, "wagate poll
// secret" + id). Nothing needs storing, a vote that arrives after a restart or a takeover is
// decrypted with the restored auth state, and a resend of the poll (same id) carries the same
// secret. Recipients learn the secret of each poll, as WhatsApp intends; an HMAC output does not
// reveal its key.

import { createHmac } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const { decryptPollVote, jidNormalizedUser } = baileys

const toJid = (to) => (to.includes('@') ? to : `${to.replace(/^\+/, '')}@s.whatsapp.net`)

/** The messageSecret of the poll this device sends with id `waId` (see above). */
export function pollSecret (creds, waId) {
  return createHmac('sha256', Buffer.from(creds.signedIdentityKey.private)).update(`wagate poll secret ${waId}`).digest()
}

/** A text message: mentions as JIDs, and the runner's link preview (never Baileys' own fetch). */
export function textContent (c) {
  const message = { text: String(c.body ?? ''), linkPreview: null } // null: Baileys fetches nothing
  if (Array.isArray(c.mentions) && c.mentions.length) message.mentions = c.mentions.map(toJid)
  const p = c.preview
  if (p?.title) {
    message.linkPreview = {
      'canonical-url': p.url, 'matched-text': p.url, title: p.title, description: p.description ?? '',
      ...(p.thumbnail_b64 ? { jpegThumbnail: Buffer.from(p.thumbnail_b64, 'base64') } : {})
    }
  }
  return message
}

/** Voice notes, stickers and polls as Baileys content; null for any other kind. */
export function moreContent (kind, c, creds, waId) {
  switch (kind) {
    case 'voice': return { audio: Buffer.from(c.media_b64 ?? '', 'base64'), mimetype: 'audio/ogg; codecs=opus', ptt: true }
    case 'sticker': return { sticker: Buffer.from(c.media_b64 ?? '', 'base64'), mimetype: 'image/webp' }
    case 'poll': return {
      poll: { name: String(c.question ?? ''), values: (c.options ?? []).map(String), selectableCount: Number(c.selectable_count ?? 1), messageSecret: pollSecret(creds, waId) }
    }
  }
  return null
}

/** An inbound poll (a contact's) as wagate content; null if the message is none. */
export function inboundPoll (msg) {
  const poll = msg.pollCreationMessage ?? msg.pollCreationMessageV2 ?? msg.pollCreationMessageV3
  if (!poll) return null
  return { question: poll.name, options: (poll.options ?? []).map((o) => o.optionName), selectable_count: poll.selectableOptionsCount || (poll.options ?? []).length }
}

/**
 * A vote in one of this device's polls, decrypted: {poll_id, selected_hashes} (hex SHA-256 of the
 * chosen options' names; the runner names them from the poll it sent). The vote's key binds the
 * poll creator's and the voter's JIDs, which WhatsApp writes as phone or LID form depending on
 * the chat's addressing, so each pairing of the forms is tried. A vote that cannot be decrypted
 * (a poll this device did not send through wagate) has `selected_hashes: null` and `error`.
 */
export function decodeVote (update, { creds, voterForms }) {
  const pollId = update.pollCreationMessageKey?.id
  const body = { poll_id: pollId, selected_hashes: null }
  if (!pollId || !update.vote?.encPayload) return { ...body, error: 'not a poll vote' }
  const pollEncKey = pollSecret(creds, pollId)
  const creators = [creds.me?.id, creds.me?.lid].filter(Boolean).map((j) => jidNormalizedUser(j))
  const voters = voterForms.filter(Boolean).map((j) => jidNormalizedUser(j))
  for (const pollCreatorJid of creators) {
    for (const voterJid of voters) {
      try {
        const vote = decryptPollVote(update.vote, { pollCreatorJid, pollMsgId: pollId, pollEncKey, voterJid })
        return { ...body, selected_hashes: (vote.selectedOptions ?? []).map((h) => Buffer.from(h).toString('hex')) }
      } catch {}
    }
  }
  return { ...body, error: 'the vote cannot be decrypted with this device\'s poll secret' }
}

// A contact of the fake votes in a poll a device sent it: the vote is encrypted as WhatsApp's
// clients do (the inverse of Baileys' decryptPollVote: a key from the poll's messageSecret, the
// poll id and both JIDs; AES-256-GCM over a PollVoteMessage of the chosen options' SHA-256) and
// delivered like any message from the contact (server.mjs `inbound`).

import { randomBytes } from 'node:crypto'
import * as baileys from '@whiskeysockets/baileys'

const { proto, hmacSign, aesEncryptGCM, sha256 } = baileys

/** The encrypted vote of `voterJid` for `options` in the poll `pollId` created by `creatorJid`. */
export function encryptVote ({ secret, pollId, creatorJid, voterJid, options }) {
  const sign = Buffer.concat([Buffer.from(pollId), Buffer.from(creatorJid), Buffer.from(voterJid), Buffer.from('Poll Vote'), new Uint8Array([1])])
  const key = hmacSign(sign, hmacSign(secret, new Uint8Array(32), 'sha256'), 'sha256')
  const plaintext = proto.Message.PollVoteMessage.encode({ selectedOptions: options.map((o) => sha256(Buffer.from(o))) }).finish()
  const encIv = randomBytes(12)
  return { encPayload: aesEncryptGCM(plaintext, key, encIv, Buffer.from(`${pollId}\u0000${voterJid}`)), encIv }
}

/**
 * `voter` (a phone number) votes `options` in the poll `pollId` that account `toPhone` sent it:
 * found among what the voter received (with its secret), checked, encrypted and delivered, from
 * the voter's number (`addressing` pn) or its LID (lid).
 * Returns the number of devices reached.
 */
export async function vote (fake, { toPhone, voter, pollId, options, waId, addressing = 'pn' }) {
  const creator = toPhone.replace(/^\+/, ''); const contact = voter.replace(/^\+/, '')
  const poll = (fake.received.get(contact) ?? []).find((m) => m.id === pollId && m.from === creator && m.seen?.kind === 'poll')
  if (!poll) throw Object.assign(new Error(`${voter} received no poll ${pollId} from ${toPhone}`), { status: 404 })
  const unknown = options.filter((o) => !poll.seen.options.includes(o))
  if (unknown.length) throw new Error(`not an option of the poll: ${unknown[0]}`)
  const secret = Buffer.from(poll.seen.secret_b64, 'base64')
  // A LID-addressed chat names both sides by LID, in the vote's key as everywhere else.
  const jidOf = (digits) => (addressing === 'lid' ? `${fake.lid(digits)}@lid` : `${digits}@s.whatsapp.net`)
  const voteEnc = encryptVote({ secret, pollId, creatorJid: jidOf(creator), voterJid: jidOf(contact), options })
  const message = {
    pollUpdateMessage: {
      pollCreationMessageKey: { remoteJid: jidOf(creator), fromMe: false, id: pollId },
      vote: voteEnc,
      senderTimestampMs: Date.now()
    }
  }
  return fake.inbound(toPhone, voter, { message }, waId, addressing)
}

// The Baileys worker's directory queries (op `query`, runner/engines/baileys/queries.py) and its
// group notices: number checks through a usync query (contact + LID), the session's groups, one
// group's metadata, create, add/remove/promote/demote and the invite code. Answers use the JSON
// shape of runner/engines/directory.py, which the simulator's results share; a refusal is
// {ok: false, error: {code: not_found | forbidden | bad_request | not_connected | failed}}.

import * as baileys from '@whiskeysockets/baileys'

const { USyncQuery, USyncUser, jidNormalizedUser, isLidUser, areJidsSameUser } = baileys

const ROLES = { admin: 'admin', superadmin: 'superadmin' }
const CODES = { 400: 'bad_request', 401: 'forbidden', 403: 'forbidden', 404: 'not_found', 406: 'bad_request' }

/** Baileys' GroupMetadata in wagate's shape. */
function group (meta, members = true) {
  const participants = (meta.participants ?? []).map((p) => ({
    jid: p.id,
    role: ROLES[p.admin] ?? 'member',
    phone: isLidUser(p.id) ? (p.phoneNumber ?? null) : jidNormalizedUser(p.id),
    lid: isLidUser(p.id) ? p.id : (p.lid ?? null)
  }))
  return {
    jid: meta.id,
    subject: meta.subject ?? '',
    owner: meta.owner ?? null,
    created: meta.creation ?? null,
    description: meta.desc ?? null,
    size: meta.size ?? participants.length,
    announce: Boolean(meta.announce),
    restrict: Boolean(meta.restrict),
    participants: members ? participants : []
  }
}

async function checkNumbers (sock, numbers) {
  const q = new USyncQuery().withContactProtocol().withLIDProtocol()
  for (const n of numbers) q.withUser(new USyncUser().withPhone(`+${n}`))
  const result = await sock.executeUSyncQuery(q)
  const byPhone = new Map((result?.list ?? []).map((r) => [r.id.split('@')[0], r]))
  return numbers.map((n) => {
    const r = byPhone.get(n)
    const on = Boolean(r?.contact)
    return { number: n, on_whatsapp: on, jid: on ? jidNormalizedUser(r.id) : null, lid: on && r.lid ? r.lid : null }
  })
}

/** One query of the runner's for the session's socket. */
export async function runQuery (session, req) {
  const sock = session.sock
  if (!sock || !session.connected) return { ok: false, error: { code: 'not_connected', message: 'not connected' } }
  try {
    switch (req.q) {
      case 'check_numbers': return { data: await checkNumbers(sock, req.numbers ?? []) }
      case 'groups': return { data: Object.values(await sock.groupFetchAllParticipating()).map((m) => group(m, false)) }
      case 'group': return { data: group(await sock.groupMetadata(req.group)) }
      case 'create_group': return { data: group(await sock.groupCreate(req.subject, req.participants ?? [])) }
      case 'update_participants': {
        const results = await sock.groupParticipantsUpdate(req.group, req.participants ?? [], req.action)
        return { data: results.map((r) => ({ jid: r.jid, status: Number(r.status) })) }
      }
      case 'invite_code': return { data: await sock.groupInviteCode(req.group) }
    }
    return { ok: false, error: { code: 'bad_request', message: `unknown query ${req.q}` } }
  } catch (e) {
    const status = Number(e?.data ?? e?.output?.statusCode)
    return { ok: false, error: { code: CODES[status] ?? 'failed', message: String(e?.message ?? e).slice(0, 200) } }
  }
}

/**
 * Group membership notices as {type: 'group_participants', …} events of the session, read from
 * the raw `w:gp2` notification (Baileys' own group-participants.update carries no time): the
 * server's `t` makes a notice delivered twice the same event. A member removing themselves, or
 * a `leave`, was done by nobody else.
 */
export function watchGroups (session, sock) {
  sock.ws.on('CB:notification,type:w:gp2', (node) => {
    const change = Array.isArray(node.content) ? node.content[0] : undefined
    const action = change?.tag === 'leave' ? 'remove' : change?.tag
    if (!['add', 'remove', 'promote', 'demote'].includes(action)) return
    const people = (Array.isArray(change.content) ? change.content : [])
      .filter((c) => c.tag === 'participant').map((c) => jidNormalizedUser(c.attrs.jid))
    const author = node.attrs.participant ? jidNormalizedUser(node.attrs.participant) : null
    const self = change.tag === 'leave' || (people.length === 1 && author && areJidsSameUser(author, people[0]))
    session.emit({ type: 'group_participants', group: node.attrs.from, action, participants: people, by: self ? null : author, ts: Number(node.attrs.t ?? Date.now() / 1000) })
  })
}

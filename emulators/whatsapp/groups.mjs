// Groups on the WhatsApp-protocol fake: the `w:g2` IQs Baileys sends (participating groups, a
// group's metadata, create, add/remove/promote/demote, invite code) and the `w:gp2`
// notifications every member's devices get when someone joins, leaves, or becomes or stops
// being an admin. Mixed into the fake's class (server.mjs); `groupRoutes` adds the control API
// (a group made on someone's phone, changes made by someone else).
//
// Groups are addressed by phone number (addressing_mode "pn"), as the fake's contacts are.

import { randomBytes } from 'node:crypto'

const S = 's.whatsapp.net'
const GROUP_BASE = 120363000000000000n
const NOT_ON_WHATSAPP = '999'
const ACTIONS = new Set(['add', 'remove', 'promote', 'demote'])

const now = () => Math.floor(Date.now() / 1000)
const digitsOf = (raw) => String(raw).replace(/^\+/, '').split('@')[0].split(':')[0]
const userJid = (digits) => `${digits}@${S}`
const children = (node, tag) => (Array.isArray(node?.content) ? node.content.filter((c) => c.tag === tag) : [])

class GroupError extends Error {
  constructor (code, text) { super(text); this.code = code }
}

export const groups = {
  /** The group of `jid` (…@g.us, or its id); a GroupError 404 if there is none. */
  group (jid) {
    const id = String(jid).split('@')[0]
    const g = (this.groups ??= new Map()).get(id)
    if (!g) throw new GroupError(404, 'item-not-found')
    return g
  },

  makeGroup (owner, subject, members) {
    if (!subject || subject.length > 100) throw new GroupError(400, 'bad-request')
    this.groups ??= new Map()
    const id = String(GROUP_BASE + BigInt(this.groups.size + 1))
    const g = { id, subject, owner, creation: now(), members: new Map([[owner, 'superadmin']]), invite: randomBytes(16).toString('base64url').slice(0, 22) }
    this.groups.set(id, g)
    const added = [...new Set(members)].filter((m) => m !== owner && !m.startsWith(NOT_ON_WHATSAPP))
    for (const m of added) g.members.set(m, 'member')
    if (added.length) this.notifyGroup(g, 'add', added, owner)
    return g
  },

  groupNode (g, withMembers = true) {
    return {
      tag: 'group',
      attrs: { id: g.id, subject: g.subject, creator: userJid(g.owner), creation: String(g.creation), s_t: String(g.creation), s_o: userJid(g.owner), size: String(g.members.size), addressing_mode: 'pn' },
      content: withMembers
        ? [...g.members].map(([d, role]) => ({ tag: 'participant', attrs: { jid: userJid(d), ...(role !== 'member' ? { type: role } : {}) } }))
        : undefined
    }
  },

  /** Add, remove, promote or demote; a status per person; the members are told of those done. */
  changeGroup (g, action, people, by) {
    if (by != null && !['admin', 'superadmin'].includes(g.members.get(by))) throw new GroupError(403, 'not-authorized')
    const done = []
    const results = people.map((raw) => {
      const d = digitsOf(raw)
      const role = g.members.get(d)
      let status = 200
      if (action === 'add') {
        if (d.startsWith(NOT_ON_WHATSAPP)) status = 404
        else if (role) status = 409
        else g.members.set(d, 'member')
      } else if (!role) status = 404
      else if (action === 'remove') g.members.delete(d)
      else if (action === 'promote') g.members.set(d, role === 'member' ? 'admin' : role)
      else if (role === 'admin') g.members.set(d, 'member')
      if (status === 200) done.push(d)
      return { jid: userJid(d), status }
    })
    if (done.length) this.notifyGroup(g, action, done, by, action === 'remove' ? done : [])
    return results
  },

  /** A w:gp2 notification to every logged-in device of every member (and of those removed). */
  notifyGroup (g, action, people, by, also = []) {
    const actor = by ?? people[0] // joined by link / left: the member itself is the actor
    const node = {
      tag: 'notification',
      attrs: { from: `${g.id}@g.us`, type: 'w:gp2', id: `gp-${Math.random().toString(36).slice(2)}`, participant: userJid(actor), t: String(now()) },
      content: [{ tag: action, attrs: {}, content: people.map((d) => ({ tag: 'participant', attrs: { jid: userJid(d) } })) }]
    }
    const audience = new Set([...g.members.keys(), ...also])
    for (const c of this.conns.values()) if (audience.has(c.digits)) c.send(node)
  },

  /** A `w:g2` IQ from a device; answers it (a result, or an error child Baileys raises). */
  groupIq (conn, node, attrs) {
    const [first] = Array.isArray(node.content) ? node.content : []
    const me = conn.digits
    const answer = (content) => conn.send({ tag: 'iq', attrs, content })
    try {
      if (first?.tag === 'participating') {
        const mine = [...(this.groups ?? new Map()).values()].filter((g) => g.members.has(me))
        return answer([{ tag: 'groups', attrs: {}, content: mine.map((g) => this.groupNode(g)) }])
      }
      if (first?.tag === 'create') {
        const members = children(first, 'participant').map((p) => digitsOf(p.attrs.jid))
        return answer([this.groupNode(this.makeGroup(me, first.attrs.subject, members))])
      }
      const g = this.group(node.attrs.to)
      if (!g.members.has(me)) throw new GroupError(403, 'forbidden')
      if (first?.tag === 'query') return answer([this.groupNode(g)])
      if (first?.tag === 'invite') {
        if (!['admin', 'superadmin'].includes(g.members.get(me))) throw new GroupError(401, 'not-authorized')
        return answer([{ tag: 'invite', attrs: { code: g.invite } }])
      }
      if (ACTIONS.has(first?.tag)) {
        const people = children(first, 'participant').map((p) => p.attrs.jid)
        const results = this.changeGroup(g, first.tag, people, me)
        return answer([{ tag: first.tag, attrs: {}, content: results.map((r) => ({ tag: 'participant', attrs: { jid: r.jid, ...(r.status !== 200 ? { error: String(r.status) } : {}) } })) }])
      }
      throw new GroupError(400, 'bad-request')
    } catch (e) {
      if (!(e instanceof GroupError)) throw e
      return conn.send({ tag: 'iq', attrs: { ...attrs, type: 'error' }, content: [{ tag: 'error', attrs: { code: String(e.code), text: e.message } }] })
    }
  }
}

/** The control API's group routes, to spread into server.mjs's `routes`. */
export function groupRoutes (fake) {
  const asked = (fn) => (body) => {
    try { return fn(body) } catch (e) { throw Object.assign(e, { status: e.code === 404 ? 404 : 400 }) }
  }
  return {
    '/_fake/group': asked(({ owner, subject, members }) => {
      const g = fake.makeGroup(digitsOf(owner), subject, (members ?? []).map(digitsOf))
      return { jid: `${g.id}@g.us`, invite: g.invite }
    }),
    '/_fake/group_participants': asked(({ group, action, participants, by }) => {
      if (!ACTIONS.has(action)) throw new GroupError(400, `unknown action ${action}`)
      return { results: fake.changeGroup(fake.group(group), action, participants, by ? digitsOf(by) : null) }
    }),
    '/_fake/groups': () => ({ groups: [...(fake.groups ?? new Map()).values()].map((g) => ({ jid: `${g.id}@g.us`, subject: g.subject, members: Object.fromEntries(g.members), invite: g.invite })) })
  }
}

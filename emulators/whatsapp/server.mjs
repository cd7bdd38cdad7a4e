// A WhatsApp-protocol fake for tests: the server side of what Baileys speaks, on loopback.
//
// Why hand-written: @openclaw/crabline (npm, MIT) completes the Noise handshake but logs every
// client straight in as one fixed account, with no QR pairing, receipts, disconnect reasons or
// logout; wagate's contract suite needs many accounts and all of those. This file reuses
// Baileys' own building blocks (binary nodes, protobufs, curve, AES-GCM, HKDF) so the wire is
// the library's, and takes from crabline only its idea and the captured certificate chain.
// noise.mjs holds the handshake and transport cipher, contact.mjs a contact's Signal side,
// pairing.mjs the phone's side of linking a device, actions.mjs what a contact sees of chat
// actions (edits, revokes, reads, presences) and sends of its own, content.mjs how a contact
// sums up what it read (kinds, mentions, previews, polls, files), uploads.mjs the https server a
// device uploads its media to, polls.mjs a contact's poll votes.
//
// What the client verifies of the server and what the fake relies on (docs/engines.md): Baileys
// checks the Noise certificate chain against WhatsApp's root key but does not bind the leaf to
// the server's static key, so a replayed real chain passes; there is no TLS on ws://.
//
// Control API (JSON over HTTP on the same port, loopback only): see `routes` below.
//   node emulators/whatsapp/server.mjs --port 0 --ready-file F   (F gets {"url": ...})

import { createServer } from 'node:http'
import { readFileSync, writeFileSync } from 'node:fs'
import { WebSocketServer } from 'ws'
import * as baileys from '@whiskeysockets/baileys'
import { Noise } from './noise.mjs'
import { makeBundle, SignalSender } from './contact.mjs'
import { pairing } from './pairing.mjs'
import { MEDIA_PREFIX, MediaHost } from './media.mjs'
import { groups, groupRoutes } from './groups.mjs'
import { actions, actionRoutes } from './actions.mjs'
import { UploadServer } from './uploads.mjs'
import { vote } from './polls.mjs'

const {
  Curve, encodeBigEndian, KEY_BUNDLE_TYPE, getBinaryNodeChild, getBinaryNodeChildren, jidDecode,
  encodeWAMessage
} = baileys

const S = 's.whatsapp.net'
const NOT_ON_WHATSAPP = '999' // numbers starting so have no account (as in wagate's simulator)

const now = () => Math.floor(Date.now() / 1000)
const lidOf = (digits) => String(100000000000000n + BigInt(digits) * 7n)

class Fake {
  constructor () { this.reset() }
  reset () {
    for (const c of this.conns?.values() ?? []) c.ws.terminate()
    for (const c of this.pairing?.values() ?? []) c.ws.terminate()
    this.accounts = new Map() // digits -> { identity, devices: Map<id, {removed}>, next }
    this.pairing = new Map() // ref -> conn
    this.conns = new Map() // device jid -> conn
    this.received = new Map() // recipient digits -> [{ id, from }]
    this.seen = new Set() // `${from}|${to}|${id}`: WhatsApp keeps one message per sender and id
    this.resent = 0 // messages that came again with an id already seen (kept once)
    this.holds = new Map() // sender digits -> { until, queue: [fn] }
    this.limits = new Map() // sender digits -> { perSecond, tokens, burst, at }
    this.bundles = new Map() // device jid -> bundle
    this.receiptMs = { delivered: 100, read: 300 }
    this.handshakes = 0
    this.pns = new Map() // lid user -> phone digits
    this.uploaded = new Map() // device jid -> its pre-key upload iq
    this.preKeysTaken = new Map() // device jid -> how many of its uploaded one-time pre-keys are used
    this.offline = new Map() // account digits -> inbound message nodes waiting for a login
    this.senders = new Map() // contact jid -> { store, sessions } (libsignal, sending side)
    this.groups = new Map() // group id -> { subject, owner, members: Map<digits, role>, invite } (groups.mjs)
    this.chatEvents = new Map() // recipient digits -> [{ kind: read|presence, … }] (actions.mjs)
    this.decrypting = Promise.resolve() // the contacts' decryptions, in order (actions.mjs)
  }
  account (digits) {
    let a = this.accounts.get(digits)
    if (!a) { a = { identity: Curve.generateKeyPair(), devices: new Map(), next: 1 }; this.accounts.set(digits, a) }
    return a
  }
  lid (digits) { const l = lidOf(digits); this.pns.set(l, digits); return l }
  /** The phone digits of a jid: its user, or for a LID the number it is lidOf. */
  pn (jid) {
    const { user, server } = jidDecode(jid)
    if (server !== 'lid') return user
    const offset = BigInt(user) - 100000000000000n
    return this.pns.get(user) ?? (offset > 0n && offset % 7n === 0n ? String(offset / 7n) : user)
  }
  bundle (jid) {
    let b = this.bundles.get(jid)
    if (!b) { b = makeBundle(); this.bundles.set(jid, b) }
    return b
  }

  /**
   * A contact writes to an account: Signal-encrypted to each logged-in device (pkmsg). Addressed
   * by phone number (`pn`, as before LIDs) or by the contact's LID (`lid`); `alternate` adds the
   * other form as WhatsApp does (`sender_pn` on a LID-addressed message, `sender_lid` on a PN one).
   */
  async inbound (toPhone, sender, text, waId, addressing = 'pn', alternate = addressing === 'lid') {
    const digits = toPhone.replace(/^\+/, '')
    const contact = sender.replace(/^\+/, '')
    const pn = `${contact}@${S}`; const lid = `${this.lid(contact)}@lid`
    const from = addressing === 'lid' ? lid : pn
    const attrs = { addressing_mode: addressing, ...(alternate ? (addressing === 'lid' ? { sender_pn: pn } : { sender_lid: lid }) : {}) }
    const conns = [...this.conns.values()].filter((c) => c.digits === digits)
    if (!conns.length) {
      const queue = this.offline.get(digits) ?? []
      queue.push({ sender: contact, text, waId, addressing, alternate }); this.offline.set(digits, queue)
      return 0
    }
    for (const c of conns) c.send(await this.encryptTo(c.jid, pn, from, text, waId, attrs))
    return conns.length
  }

  /** A message node from contact `pn` (its one Signal identity), addressed `from`. */
  async encryptTo (deviceJid, pn, from, text, waId, attrs) {
    const upload = this.uploaded.get(deviceJid)
    if (!upload) throw new Error(`${deviceJid} uploaded no pre-keys`)
    let sender = this.senders.get(pn)
    if (!sender) { sender = new SignalSender(this.bundle(pn)); this.senders.set(pn, sender) }
    const takePreKey = () => { const n = this.preKeysTaken.get(deviceJid) ?? 0; this.preKeysTaken.set(deviceJid, n + 1); return n }
    // `text`: a string, or {message} for another kind of message (a media message: media.mjs)
    const message = typeof text === 'string' ? { conversation: text } : text.message
    const { type, body } = await sender.encrypt(deviceJid, upload, encodeWAMessage(message), takePreKey)
    return {
      tag: 'message', attrs: { from, id: waId, t: String(now()), type: typeof text === 'string' ? 'text' : 'media', notify: 'Contact', ...attrs },
      content: [{ tag: 'enc', attrs: { v: '2', type }, content: body }]
    }
  }

  connFor (jid) {
    const d = jidDecode(jid)
    return this.conns.get(`${d.user}:${d.device ?? 0}@${S}`)
  }

  drop (jid, reason, abrupt) {
    const conn = this.connFor(jid)
    if (!conn) return 0
    if (abrupt) { conn.ws.terminate(); return 1 }
    if (reason === 401) conn.deviceInfo.removed = true
    conn.send(reason === 440
      ? { tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] }
      : { tag: 'stream:error', attrs: { code: String(reason) } })
    conn.ws.close()
    return 1
  }

  /**
   * A client message: recorded once per (sender, id) with what the recipient reads of it
   * (actions.mjs describeInto, before the ack), acked (unless held), then receipts.
   */
  async message (conn, node) {
    const { to, id } = node.attrs
    const from = conn.digits
    const rcpt = to.endsWith('@g.us') ? to : this.pn(to) // a group's sends are kept under its jid
    const limit = this.limits.get(from)
    if (limit) {
      const t = Date.now() / 1000
      limit.tokens = Math.min(limit.burst, limit.tokens + (t - limit.at) * limit.perSecond); limit.at = t
      if (limit.tokens < 1) return conn.send({ tag: 'ack', attrs: { class: 'message', id, from: to, error: '429', t: String(now()) } })
      limit.tokens -= 1
    }
    const key = `${from}|${rcpt}|${id}`
    const fresh = !this.seen.has(key)
    if (fresh) {
      this.seen.add(key)
      const list = this.received.get(rcpt) ?? []
      const entry = { id, from, ts: Date.now() / 1000 }
      list.push(entry); this.received.set(rcpt, list)
      await this.describeInto(conn, node, rcpt, entry)
    } else this.resent++
    const ack = () => {
      conn.send({ tag: 'ack', attrs: { class: 'message', id, from: to, t: String(now()) } })
      if (!fresh) return
      const receipt = (type, ms) => ms >= 0 && setTimeout(() => conn.send({
        tag: 'receipt', attrs: { from: to, id, t: String(now()), ...(type ? { type } : {}) }
      }), ms)
      receipt(undefined, this.receiptMs.delivered); receipt('read', this.receiptMs.read)
    }
    const hold = this.holds.get(from)
    if (hold && hold.until > Date.now()) hold.queue.push(ack)
    else ack()
  }

  stall (digits, seconds) {
    const prev = this.holds.get(digits)
    if (prev) clearTimeout(prev.timer)
    const hold = { until: Date.now() + seconds * 1000, queue: prev?.queue ?? [] }
    const release = () => { if (this.holds.get(digits) === hold) this.holds.delete(digits); for (const f of hold.queue.splice(0)) f() }
    this.holds.set(digits, hold)
    if (seconds <= 0) return release()
    hold.timer = setTimeout(release, seconds * 1000)
  }

  iq (conn, node) {
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    const attrs = { from: node.attrs.to ?? S, id: node.attrs.id, type: 'result', t: String(now()) }
    const xmlns = node.attrs.xmlns
    if (xmlns === 'w:g2') return this.groupIq(conn, node, attrs)
    if (xmlns === 'privacy') return this.privacy(conn, attrs)
    if (child?.tag === 'pair-device-sign') { // pairing done: the device must log in afresh
      conn.send({ tag: 'stream:error', attrs: { code: '515' } })
      return conn.ws.close()
    }
    if (xmlns === 'md' && child?.tag === 'remove-companion-device') {
      if (conn.deviceInfo) conn.deviceInfo.removed = true
      return conn.send({ tag: 'iq', attrs })
    }
    if (child?.tag === 'link_code_companion_reg') {
      if (child.attrs.stage === 'companion_hello') {
        const ref = `lc-${Math.random().toString(36).slice(2)}`
        conn.codeHello = { ref, digits: jidDecode(child.attrs.jid).user, wrapped: getBinaryNodeChild(child, 'link_code_pairing_wrapped_companion_ephemeral_pub').content }
        this.pairing.set(ref, conn)
        return conn.send({ tag: 'iq', attrs, content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }] }] })
      }
      conn.send({ tag: 'iq', attrs })
      return this.codeFinish(conn, child)
    }
    if (xmlns === 'encrypt' && node.attrs.type === 'set' && getBinaryNodeChild(node, 'identity')) {
      this.uploaded.set(conn.jid, node) // the device's pre-keys: what inbound messages use
      this.preKeysTaken.delete(conn.jid) // a new upload's keys are all unused
      return conn.send({ tag: 'iq', attrs })
    }
    if (xmlns === 'w:m' && child?.tag === 'media_conn' && this.uploads) return conn.send({ tag: 'iq', attrs, content: [this.uploads.conn()] })
    if (xmlns === 'encrypt' && child?.tag === 'count') return conn.send({ tag: 'iq', attrs, content: [{ tag: 'count', attrs: { value: '50' } }] })
    if (xmlns === 'encrypt' && child?.tag === 'key') {
      const users = getBinaryNodeChildren(child, 'user').map((u) => {
        const b = this.bundle(u.attrs.jid)
        return { tag: 'user', attrs: { jid: u.attrs.jid }, content: [
          { tag: 'registration', attrs: {}, content: encodeBigEndian(b.registrationId) },
          { tag: 'type', attrs: {}, content: KEY_BUNDLE_TYPE },
          { tag: 'identity', attrs: {}, content: b.identity.public },
          { tag: 'skey', attrs: {}, content: [
            { tag: 'id', attrs: {}, content: encodeBigEndian(1, 3) },
            { tag: 'value', attrs: {}, content: b.signed.keyPair.public },
            { tag: 'signature', attrs: {}, content: b.signed.signature }] }
        ] }
      })
      return conn.send({ tag: 'iq', attrs, content: [{ tag: 'list', attrs: {}, content: users }] })
    }
    if (xmlns === 'usync' && child?.tag === 'usync') {
      const queries = (getBinaryNodeChild(child, 'query')?.content ?? []).map((q) => q.tag)
      const list = getBinaryNodeChild(child, 'list')
      const users = getBinaryNodeChildren(list, 'user').map((u) => {
        const phone = getBinaryNodeChild(u, 'contact')?.content?.toString()
        const digits = phone ? phone.replace(/^\+/, '') : this.pn(u.attrs.jid)
        const known = !digits.startsWith(NOT_ON_WHATSAPP)
        const content = []
        for (const q of queries) {
          if (q === 'contact') content.push({ tag: 'contact', attrs: { type: known ? 'in' : 'out' } })
          if (q === 'devices') content.push({ tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: known ? [{ tag: 'device', attrs: { id: '0' } }] : [] }] })
          if (q === 'lid' && known) content.push({ tag: 'lid', attrs: { val: `${this.lid(digits)}@lid` } })
        }
        return { tag: 'user', attrs: { jid: `${digits}@${S}` }, content }
      })
      return conn.send({ tag: 'iq', attrs, content: [{ tag: 'usync', attrs: { sid: child.attrs.sid ?? '1', index: '0', last: 'true' }, content: [{ tag: 'list', attrs: {}, content: users }] }] })
    }
    return conn.send({ tag: 'iq', attrs })
  }

  /** One client socket: handshake, then pairing (no creds) or login (creds). */
  accept (ws) {
    const noise = new Noise()
    const conn = { ws, frozenUntil: 0, send: (node) => { if (ws.readyState === 1 && conn.frozenUntil <= Date.now()) ws.send(noise.encode(node)) } }
    let stage = 'hello'
    let chain = Promise.resolve()
    ws.on('message', (data) => {
      chain = chain.then(async () => {
        for (const f of noise.frames(data)) {
          if (stage === 'hello') { ws.send(noise.serverHello(f)); stage = 'finish'; continue }
          if (stage === 'finish') { this.login(conn, noise.clientFinish(f)); stage = 'open'; continue }
          const node = await noise.decode(f)
          if (conn.frozenUntil > Date.now()) continue
          if (node.tag === 'iq') this.iq(conn, node)
          else if (node.tag === 'message' && conn.digits) await this.message(conn, node)
          else if ((node.tag === 'receipt' || node.tag === 'chatstate') && conn.digits) this.chatAction(conn, node)
        }
      }).catch(() => ws.terminate())
    })
    ws.on('close', () => {
      if (conn.jid && this.conns.get(conn.jid) === conn) this.conns.delete(conn.jid)
      for (const [r, c] of this.pairing) if (c === conn) this.pairing.delete(r)
    })
  }

  login (conn, payload) {
    this.handshakes++
    if (payload.devicePairingData) {
      const refs = Array.from({ length: 6 }, (_, i) => `ref-${Math.random().toString(36).slice(2)}-${i}`)
      for (const r of refs) this.pairing.set(r, conn)
      conn.send({ tag: 'iq', attrs: { from: S, type: 'set', id: `pd-${refs[0]}`, xmlns: 'md' },
        content: [{ tag: 'pair-device', attrs: {}, content: refs.map((r) => ({ tag: 'ref', attrs: {}, content: Buffer.from(r) })) }] })
      return
    }
    const digits = String(payload.username)
    const device = payload.device ?? 0
    const info = this.accounts.get(digits)?.devices.get(device)
    if (!info || info.removed) {
      conn.send({ tag: 'failure', attrs: { reason: '401', location: 'fake' } })
      conn.ws.close(); return
    }
    conn.digits = digits; conn.deviceInfo = info; conn.jid = `${digits}:${device}@${S}`
    const old = this.conns.get(conn.jid)
    if (old) { old.send({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] }); old.ws.close() }
    this.conns.set(conn.jid, conn)
    conn.send({ tag: 'success', attrs: { t: String(now()), lid: `${this.lid(digits)}:${device}@lid`, props: '1', abprops: '1', location: 'fake' } })
    conn.send({ tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: '0' } }] })
    const waiting = this.offline.get(digits) ?? []
    this.offline.delete(digits)
    if (waiting.length) {
      // After the device's pre-key upload (its first iqs after `success`).
      setTimeout(() => { for (const m of waiting) this.inbound(`+${digits}`, m.sender, m.text, m.waId, m.addressing, m.alternate).catch(() => {}) }, 500)
    }
  }
}

Object.assign(Fake.prototype, pairing, groups, actions)
const fake = new Fake()
const media = new MediaHost() // contacts' media files (media.mjs)

/** The control API: each route takes a JSON body and answers JSON. */
const routes = {
  '/_fake/reset': () => { fake.reset(); media.reset(); fake.uploads?.reset(); return {} },
  '/_fake/scan': ({ qr, phone }) => { fake.scan(qr, phone); return {} },
  '/_fake/pair_code': async ({ code, phone }) => { await fake.confirmCode(code, phone); return {} },
  '/_fake/received': async ({ recipient }) => {
    await fake.decrypting
    const messages = fake.received.get(recipient.replace(/^\+/, '')) ?? []
    return { ids: messages.map((m) => m.id), messages }
  },
  '/_fake/drop': ({ jid, reason, abrupt }) => ({ dropped: fake.drop(jid, reason, abrupt) }),
  '/_fake/freeze': ({ jid, seconds }) => { const c = fake.connFor(jid); if (c) c.frozenUntil = Date.now() + seconds * 1000; return { frozen: c ? 1 : 0 } },
  '/_fake/stall': ({ phone, seconds }) => { fake.stall(phone.replace(/^\+/, ''), seconds); return {} },
  '/_fake/rate_limit': ({ phone, per_second: perSecond, burst }) => {
    const d = phone.replace(/^\+/, '')
    if (perSecond == null) fake.limits.delete(d)
    else fake.limits.set(d, { perSecond, burst, tokens: burst, at: Date.now() / 1000 })
    return {}
  },
  '/_fake/config': ({ receipt_delay_ms: d, read_delay_ms: r }) => { fake.receiptMs = { delivered: d ?? 100, read: r ?? 300 }; return {} },
  '/_fake/inbound': async ({ to_phone: to, sender, text, wa_id: id, addressing, alternate }) => ({ delivered: await fake.inbound(to, sender, text, id, addressing ?? 'pn', alternate ?? addressing === 'lid') }),
  // A contact sends a media message: {to_phone, sender, wa_id, addressing, kind, data_b64, mime_type, ...} (media.mjs)
  '/_fake/inbound_media': async ({ to_phone: to, sender, wa_id: id, addressing, alternate, ...file }) => ({
    delivered: await fake.inbound(to, sender, { message: await media.message(file) }, id, addressing ?? 'pn', alternate ?? addressing === 'lid')
  }),
  '/_fake/media_stats': () => ({ downloads: media.downloads }),
  ...groupRoutes(fake),
  ...actionRoutes(fake),
  '/_fake/vote': async ({ to_phone: toPhone, voter, poll_id: pollId, options, wa_id: waId, addressing }) => ({ delivered: await vote(fake, { toPhone, voter, pollId, options, waId, addressing }) }),
  '/healthz': () => ({ ok: true }),
  '/_fake/stats': () => ({
    connected: fake.conns.size, pairing: fake.pairing.size, handshakes: fake.handshakes, resent: fake.resent,
    held: Object.fromEntries([...fake.holds].map(([d, h]) => [d, h.queue.length]))
  })
}

const args = process.argv.slice(2)
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt }
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith(MEDIA_PREFIX)) return media.serve(req, res)
  const route = routes[req.url]
  let body = ''
  req.on('data', (c) => { body += c })
  req.on('end', async () => {
    try {
      if (!route) throw Object.assign(new Error(`no route ${req.url}`), { status: 404 })
      const out = await route(body ? JSON.parse(body) : {})
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
    } catch (e) {
      res.writeHead(e.status ?? 400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e.message ?? e) }))
    }
  })
})
new WebSocketServer({ server, path: '/ws/chat' }).on('connection', (ws) => fake.accept(ws))
// Media uploads need https (Baileys' rule): with a certificate, the upload server runs beside.
if (opt('--tls-cert')) fake.uploads = await new UploadServer({ cert: readFileSync(opt('--tls-cert')), key: readFileSync(opt('--tls-key')) }).listen()
server.listen(Number(opt('--port', '0')), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}`
  const ready = opt('--ready-file')
  if (ready) writeFileSync(ready, JSON.stringify({ url, ws: `${url.replace('http', 'ws')}/ws/chat` }))
  process.stdout.write(`${url}\n`)
})
process.on('SIGTERM', () => process.exit(0))

// The Baileys worker: holds up to N WhatsApp sockets for the runner (runner/engines/baileys).
//
// stdin/stdout carry one JSON object per line. Requests {op, req, sid, ...} get one reply
// {re, ok, ...}; events are {ev: 'event', sid, event: {type, ...}} in the schema of
// runner/engines/whatsmeow/wire.py (encode_event), plus {ev: 'auth', sid, state} (the session's
// BufferJSON auth state) and {ev: 'ack', sid, wa_id, ts}; an inbound event also carries
// sender_phone and sender_lid, the sender's two address forms where known. Every session's work runs inside its
// own try/catch and an unhandled rejection is logged, not fatal: one session's failure never
// ends the others. The library's log goes to stderr.
//
// Ops: open {sid, auth, url, keepalive_ms}; send {sid, wa_id, to, kind, content, timeout_ms};
//      act {sid, wa_id, to, kind, content, timeout_ms} (chat actions: actions.mjs);
//      pair_phone {sid, phone}; logout {sid}; close {sid}; ping {};
//      download {media, media_url, limit} (a received file: media.mjs);
//      query {sid, q, …} (number checks and groups: queries.mjs).

import { createInterface } from 'node:readline'
import * as baileys from '@whiskeysockets/baileys'
import { act, changeOf } from './actions.mjs'
import { download, mediaOf } from './media.mjs'
import { runQuery, watchGroups } from './queries.mjs'
import { decodeVote, inboundPoll, moreContent, textContent } from './kinds.mjs'

const { makeWASocket, BufferJSON, initAuthCreds, Browsers, jidNormalizedUser, jidDecode, isLidUser, isPnUser } = baileys

const SAVE_DEBOUNCE_MS = 500
const CONNECT_TIMEOUT_MS = 60_000 // SPEC §4
const QUERY_TIMEOUT_MS = 60_000
const REASONS = new Set([401, 403, 408, 411, 428, 440, 500, 503, 515])

/** @param {object} frame */
const out = (frame) => process.stdout.write(JSON.stringify(frame) + '\n')
const log = (level, msg, extra) => process.stderr.write(JSON.stringify({ level, msg, ...extra }) + '\n')

/** A pino-shaped logger writing warnings and errors to stderr (Baileys wants `.child`). */
const makeLogger = (bindings = {}) => ({
  level: 'warn',
  child: (b) => makeLogger({ ...bindings, ...b }),
  trace () {}, debug () {}, info () {},
  warn: (obj, msg) => log('warn', msg ?? String(obj?.msg ?? ''), { ...bindings }),
  error: (obj, msg) => log('error', msg ?? String(obj?.msg ?? obj), { ...bindings, ...(obj?.err ? { err: String(obj.err?.message ?? obj.err).slice(0, 200) } : {}) })
})

/** Signal keys in memory, a plain object per key type; serialised with the creds. */
function memoryKeys (data) {
  return {
    data,
    get: async (type, ids) => Object.fromEntries(ids.map((id) => [id, data[type]?.[id]]).filter(([, v]) => v != null)),
    set: async (changes) => {
      for (const [type, values] of Object.entries(changes)) {
        data[type] ??= {}
        for (const [id, value] of Object.entries(values)) {
          if (value == null) delete data[type][id]
          else data[type][id] = value
        }
      }
    }
  }
}

/** @param {string|null} text  @returns {{creds: object, keys: object}|null} */
function restore (text) {
  if (text == null) return { creds: initAuthCreds(), keys: {} }
  try {
    const parsed = JSON.parse(text, BufferJSON.reviver)
    if (parsed?.format !== 'wagate-baileys-1' || !parsed.creds?.noiseKey || !parsed.creds?.signedIdentityKey) return null
    return { creds: parsed.creds, keys: parsed.keys ?? {} }
  } catch {
    return null
  }
}

/**
 * The phone (`…@s.whatsapp.net`) and LID (`…@lid`) forms of a user, from the addresses a message
 * key gives and the session's LID mapping: the `lid-mapping` signal keys Baileys fills from
 * message envelopes, usync answers and `lid-mapping.update` ({pnUser: lidUser,
 * `${lidUser}_reverse`: pnUser}). They live in the session's auth state, so the mapping is kept
 * per session and survives a worker restart with its backup.
 */
function addressForms (mapping, ...jids) {
  let phone = null; let lid = null
  for (const jid of jids) {
    const user = jid ? jidNormalizedUser(jid) : ''
    if (isLidUser(user)) lid ??= user
    else if (isPnUser(user)) phone ??= user
  }
  const userOf = (jid) => jidDecode(jid)?.user
  if (lid && !phone && mapping?.[`${userOf(lid)}_reverse`]) phone = `${mapping[`${userOf(lid)}_reverse`]}@s.whatsapp.net`
  if (phone && !lid && mapping?.[userOf(phone)]) lid = `${mapping[userOf(phone)]}@lid`
  return { phone, lid }
}

const toJid = (to) => (to.includes('@') ? to : `${to.replace(/^\+/, '')}@s.whatsapp.net`)

/** wagate's message kinds as Baileys content. Media arrives as bytes (fetched by the runner). */
function content (kind, c, creds, waId) {
  const more = moreContent(kind, c, creds, waId) // voice notes, stickers, polls (kinds.mjs)
  if (more) return more
  switch (kind) {
    case 'text': return textContent(c) // mentions, the runner's link preview
    case 'location': return { location: { degreesLatitude: c.latitude, degreesLongitude: c.longitude, name: c.name, address: c.address } }
    case 'contact': return { contacts: { displayName: c.name, contacts: [{ vcard: c.vcard ?? `BEGIN:VCARD\nVERSION:3.0\nFN:${c.name}\nTEL;type=CELL;waid=${String(c.phone ?? '').replace(/\D/g, '')}:${c.phone ?? ''}\nEND:VCARD` }] } }
    case 'reaction': return { react: { text: c.emoji ?? '', key: { remoteJid: toJid(c.chat ?? c.to ?? ''), id: c.message_id, fromMe: c.from_me ?? true } } }
    case 'image': case 'video': case 'audio': case 'document': {
      const media = Buffer.from(c.media_b64 ?? '', 'base64')
      const base = { [kind]: media, mimetype: c.mime_type, caption: c.caption }
      if (kind === 'document') base.fileName = c.filename ?? 'file'
      return base
    }
  }
  throw Object.assign(new Error(`unknown message kind ${kind}`), { permanent: true })
}

/** One linked device: a Baileys socket, its auth state, and the sends awaiting a server ack. */
class Session {
  constructor (sid, auth, opts) {
    this.sid = sid; this.creds = auth.creds; this.keys = memoryKeys(auth.keys); this.opts = opts
    this.acks = new Map() // wa_id -> {resolve, reject, timer}
    this.saveTimer = null; this.sock = null; this.closed = false; this.connected = false
  }
  emit (event) { if (!this.closed) out({ ev: 'event', sid: this.sid, event }) }
  saveSoon () {
    clearTimeout(this.saveTimer)
    this.saveTimer = setTimeout(() => this.save(), SAVE_DEBOUNCE_MS)
  }
  save () {
    clearTimeout(this.saveTimer); this.saveTimer = null
    if (!this.creds.account || this.closed) return // not paired yet: never worth a backup
    out({ ev: 'auth', sid: this.sid, state: JSON.stringify({ format: 'wagate-baileys-1', creds: this.creds, keys: this.keys.data }, BufferJSON.replacer) })
  }
  start () {
    const keys = { get: this.keys.get, set: async (d) => { await this.keys.set(d); this.saveSoon() } }
    const sock = makeWASocket({
      waWebSocketUrl: this.opts.url,
      auth: { creds: this.creds, keys },
      logger: process.env.BAILEYS_TRACE ? makeTrace() : makeLogger({ sid: this.sid }),
      browser: Browsers.ubuntu('wagate'),
      keepAliveIntervalMs: this.opts.keepalive_ms ?? 30_000,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      defaultQueryTimeoutMs: QUERY_TIMEOUT_MS,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      emitOwnEvents: false,
      // The fake sends no history: without this Baileys buffers every event for 20 s at first login.
      shouldSyncHistoryMessage: () => this.opts.sync_history !== false,
      generateHighQualityLinkPreview: false,
      getMessage: async () => undefined
    })
    this.sock = sock
    sock.ev.on('creds.update', (update) => { Object.assign(this.creds, update); this.saveSoon() })
    sock.ev.on('connection.update', (u) => this.onConnection(sock, u))
    sock.ev.on('messages.update', (updates) => {
      for (const { key, update } of updates) {
        if (!key.fromMe || update.status == null) continue
        const kind = update.status >= 4 ? 'read' : update.status === 3 ? 'delivered' : null
        if (kind) this.emit({ type: 'receipt', wa_ids: [key.id], kind, chat: key.remoteJid, ts: Date.now() / 1000 })
      }
    })
    sock.ev.on('messages.upsert', ({ messages, type }) => {
      for (const m of messages) this.inbound(m, type !== 'notify' && type !== 'append')
    })
    sock.ws.on('CB:ack,class:message', (node) => this.onAck(node))
    watchGroups(this, sock) // group_participants events (queries.mjs)
  }
  onConnection (sock, { connection, lastDisconnect, qr, isNewLogin }) {
    if (sock !== this.sock || this.closed) return
    if (isNewLogin) this.justPaired = true
    if (qr) this.emit({ type: 'qr', code: qr, expires_at: Date.now() / 1000 + 60 })
    if (connection === 'open') {
      this.connected = true
      this.save()
      this.emit({ type: 'connected', jid: this.creds.me.id, phone_jid: jidNormalizedUser(this.creds.me.id), lid: this.creds.me.lid ?? null })
    }
    if (connection === 'close') {
      this.connected = false
      const code = lastDisconnect?.error?.output?.statusCode
      const reason = REASONS.has(code) ? code : 428
      this.failPending('the socket closed before the server acknowledged')
      if (reason === 515 && this.creds.me && this.justPaired) {
        // Pairing ends with the server asking for a restart; the new socket logs in.
        this.justPaired = false
        this.save()
        this.start()
        return
      }
      this.sock = null
      this.emit({ type: 'disconnected', reason, detail: String(lastDisconnect?.error?.message ?? '') })
    }
  }
  onAck (node) {
    const pending = this.acks.get(node.attrs.id)
    const ts = Number(node.attrs.t ?? Date.now() / 1000)
    if (node.attrs.error) {
      if (!pending) return
      this.acks.delete(node.attrs.id); clearTimeout(pending.timer)
      const code = Number(node.attrs.error)
      pending.resolve({ ok: false, error: { permanent: code >= 400 && code < 500 && code !== 408 && code !== 429, code, message: `server returned error ${code}`, retry_after: code === 429 ? 60 : null } })
      return
    }
    out({ ev: 'ack', sid: this.sid, wa_id: node.attrs.id, ts })
    if (pending) { this.acks.delete(node.attrs.id); clearTimeout(pending.timer); pending.resolve({ ok: true, ts }) }
  }
  failPending (message) {
    for (const [id, p] of this.acks) { clearTimeout(p.timer); p.resolve({ ok: false, error: { permanent: false, message } }); this.acks.delete(id) }
  }
  inbound (m, fromHistory) {
    const msg = m.message
    if (!msg || !m.key?.id) return
    let kind = null; let body = {}
    const text = msg.conversation ?? msg.extendedTextMessage?.text
    const change = changeOf(baileys.normalizeMessageContent(msg))
    if (change) { kind = change.kind; body = change.content } else if (text != null) { kind = 'text'; body = { body: text } }
    else if (msg.pollUpdateMessage) { kind = 'poll_vote'; body = decodeVote(msg.pollUpdateMessage, { creds: this.creds, voterForms: [m.key.participant || m.key.remoteJid, m.key.participantAlt || m.key.remoteJidAlt] }) }
    else if (inboundPoll(msg)) { kind = 'poll'; body = inboundPoll(msg) }
    else if (msg.reactionMessage) { kind = 'reaction'; body = { emoji: msg.reactionMessage.text, message_id: msg.reactionMessage.key?.id } }
    else if (msg.locationMessage) { kind = 'location'; body = { latitude: msg.locationMessage.degreesLatitude, longitude: msg.locationMessage.degreesLongitude, name: msg.locationMessage.name ?? undefined } }
    else if (msg.contactMessage) { kind = 'contact'; body = { name: msg.contactMessage.displayName, vcard: msg.contactMessage.vcard } }
    else {
      for (const k of ['image', 'video', 'audio', 'document', 'sticker']) {
        const media = msg[`${k}Message`]
        if (media) { kind = k; body = { mime_type: media.mimetype, caption: media.caption ?? undefined, size: Number(media.fileLength ?? 0) } }
      }
    }
    if (!kind) return // protocol messages
    if (kind === 'audio' && msg.audioMessage.ptt) kind = 'voice'
    const media = mediaOf(msg) // the file the runner downloads (op download, media.mjs)
    const chat = m.key.remoteJid
    const sender = m.key.fromMe ? this.creds.me.id : (m.key.participant || chat)
    const forms = m.key.fromMe
      ? addressForms(null, this.creds.me.id, this.creds.me.lid)
      : addressForms(this.keys.data['lid-mapping'], sender, m.key.participantAlt || m.key.remoteJidAlt)
    this.emit({
      type: 'inbound', wa_id: m.key.id, chat, sender, sender_phone: forms.phone, sender_lid: forms.lid, kind, content: body,
      ts: Number(m.messageTimestamp ?? Date.now() / 1000), from_history: fromHistory, from_me: Boolean(m.key.fromMe),
      ...(media ? { media } : {})
    })
  }
  async send ({ wa_id: waId, to, kind, content: c, timeout_ms: timeoutMs }) {
    if (!this.sock || !this.connected) return { ok: false, error: { permanent: false, message: 'not connected' } }
    const jid = toJid(to)
    if (!jid.endsWith('@g.us') && !jid.endsWith('@lid') && !(this.known ??= new Set()).has(jid)) {
      const [found] = (await this.sock.onWhatsApp(jid)) ?? []
      if (!found?.exists) return { ok: false, error: { permanent: true, message: `${to} is not on WhatsApp` } }
      this.known.add(jid)
    }
    let message
    try { message = content(kind, c, this.creds, waId) } catch (e) { return { ok: false, error: { permanent: Boolean(e.permanent), message: String(e.message ?? e) } } }
    return this.sendAcked(waId, jid, message, timeoutMs)
  }
  /** sendMessage with wagate's id, resolved by the server's ack of that id (or its timeout). */
  async sendAcked (waId, jid, message, timeoutMs) {
    const acked = new Promise((resolve) => {
      const timer = setTimeout(() => { this.acks.delete(waId); resolve({ ok: false, error: { permanent: false, message: 'no server ack in time' } }) }, timeoutMs ?? 30_000)
      this.acks.set(waId, { resolve, timer })
    })
    try {
      await this.sock.sendMessage(jid, message, { messageId: waId })
    } catch (e) {
      const p = this.acks.get(waId); if (p) { clearTimeout(p.timer); this.acks.delete(waId) }
      return { ok: false, error: { permanent: Boolean(e.permanent), message: String(e.message ?? e) } }
    }
    return acked
  }
  stop () {
    this.closed = true
    this.failPending('the connection was closed')
    if (this.saveTimer) { this.closed = false; this.save(); this.closed = true }
    const sock = this.sock; this.sock = null
    if (sock) { sock.ev.removeAllListeners(); try { sock.end(undefined) } catch {} }
  }
}

const sessions = new Map()

async function handle (req) {
  const s = sessions.get(req.sid)
  switch (req.op) {
    case 'ping': return { sessions: sessions.size }
    case 'memory': { // after a full collection where the worker runs with --expose-gc
      globalThis.gc?.()
      const m = process.memoryUsage()
      return { rss: m.rss, heap_used: m.heapUsed, heap_total: m.heapTotal, external: m.external, array_buffers: m.arrayBuffers }
    }
    case 'open': {
      sessions.get(req.sid)?.stop()
      const auth = restore(req.auth ?? null)
      if (!auth) {
        out({ ev: 'event', sid: req.sid, event: { type: 'disconnected', reason: 401, detail: 'not a Baileys auth state' } })
        return {}
      }
      const session = new Session(req.sid, auth, req)
      sessions.set(req.sid, session)
      session.start()
      return {}
    }
    case 'send': return s ? s.send(req) : { ok: false, error: { permanent: false, message: 'not connected' } }
    case 'query': return s ? runQuery(s, req) : { ok: false, error: { code: 'not_connected', message: 'not connected' } }
    case 'act': return s ? act(s, req, toJid) : { ok: false, error: { permanent: false, message: 'not connected' } }
    case 'pair_phone': {
      if (!s?.sock) throw new Error('not connected')
      const code = await s.sock.requestPairingCode(String(req.phone).replace(/\D/g, ''))
      out({ ev: 'event', sid: req.sid, event: { type: 'pairing_code', code } })
      return { code }
    }
    case 'logout': {
      if (!s?.sock) throw new Error('not connected')
      await s.sock.logout()
      return {}
    }
    case 'close': { s?.stop(); sessions.delete(req.sid); return {} }
    case 'download': { // a received file {media (mediaOf), media_url, limit} → its bytes, base64
      try {
        return { data_b64: (await download(req.media, req.media_url, req.limit)).toString('base64') }
      } catch (e) {
        return { ok: false, error: { code: e.code ?? 'dependency_unavailable', message: String(e.message ?? e) } }
      }
    }
  }
  throw new Error(`unknown op ${req.op}`)
}

process.on('unhandledRejection', (e) => log('error', `unhandled rejection: ${e?.stack ?? e}`))
process.on('uncaughtException', (e) => log('error', `uncaught exception: ${e?.stack ?? e}`))

createInterface({ input: process.stdin }).on('line', (line) => {
  let req
  try { req = JSON.parse(line) } catch { return log('error', 'a request that is not JSON was dropped') }
  Promise.resolve().then(() => handle(req)).then(
    (reply) => out({ re: req.req, ok: reply.ok ?? true, ...reply }),
    (e) => out({ re: req.req, ok: false, error: { permanent: false, message: String(e?.message ?? e) } })
  )
}).on('close', () => { for (const s of sessions.values()) s.stop(); process.exit(0) })
function makeTrace () {
  const l = { level: 'trace', child: () => l }
  for (const k of ['trace', 'debug', 'info', 'warn', 'error']) l[k] = (o, m) => process.stderr.write(`${k} ${m ?? ''} ${JSON.stringify(o)?.slice(0, 300)}\n`)
  return l
}

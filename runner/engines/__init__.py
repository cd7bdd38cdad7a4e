"""WhatsApp engine adapters behind wagate.ports.WhatsAppEngine, chosen by `WAGATE_ENGINE`:
`simulated` talks to the local simulator, `baileys` and `whatsmeow` to WhatsApp. What they share
lives beside them: `event_stream` (every connection's events), `outgoing` (the real engines'
recipient check and media fetch) and `manual_pairing` (the real-phone test)."""

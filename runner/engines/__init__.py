"""WhatsApp engine adapters behind wagate.ports.WhatsAppEngine: `simulated` talks to the
local simulator; a real multi-device library sits beside it, chosen by configuration."""

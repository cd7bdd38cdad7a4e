"""The WhatsApp simulator: a separate program that stands in for WhatsApp's servers.

It speaks a small framed-JSON protocol over one websocket per linked device (PROTOCOL.md)
and offers a JSON control API that plays the phone (scanning QR codes, confirming pairing
codes, sending inbound messages), injects faults and lets tests count exactly what each
recipient received. Run it with `python -m simulator --host 127.0.0.1 --port 8070`.
"""

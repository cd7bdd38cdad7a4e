"""Local stand-ins for the managed services that have no faithful emulator of their own.

Each sub-package is a separate program (``python -m emulators.<name>``) that the local stack
starts next to the vendor emulators; none of them imports wagate, so they stay usable on their
own and cannot blur the line between the gateway and what it talks to.
"""

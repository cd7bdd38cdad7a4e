"""wagate's Cloud Tasks emulator: the Cloud Tasks v2 REST API on loopback, dispatching HTTP
tasks for real, so the gateway's enqueue → dispatch → retry path runs locally unchanged.

Hand-written because no emulator on the registries dispatches concurrently, enforces deadlines,
backs off or refuses duplicate task names, and wagate relies on all four. How to run it, what
it reproduces and every difference from the real service: NOTES.md beside this file.

Layout: ``server`` (REST surface) → ``emulator`` (the RPCs and their rules) → ``queue``
(scheduling and dispatch) → ``delivery`` (HTTP); ``wire`` maps Queue and Task resources to
protobuf JSON and back (its scalars in ``protojson``), ``config`` holds the retry/rate
policy, ``names`` the naming rules and the spent-name memory.
"""

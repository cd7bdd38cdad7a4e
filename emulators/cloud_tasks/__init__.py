"""wagate's Cloud Tasks emulator: the Cloud Tasks v2 REST API on loopback, dispatching HTTP
tasks for real, so the gateway's enqueue → dispatch → retry path runs locally unchanged.

Hand-written because no faithful emulator exists on the registries: the PyPI
``gcloud-tasks-emulator`` dispatches one task at a time per queue with no timeout, retries
without backoff and accepts duplicate task names — exactly the behaviours wagate relies on.

Run it::

    python -m emulators.cloud_tasks --host 127.0.0.1 --port 8123 [--log-level DEBUG]

It prints ``cloud-tasks-emulator listening on http://HOST:PORT`` when ready, answers
``GET /healthz``, and stops cleanly on SIGTERM/SIGINT. Point the official client at it::

    tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint="http://127.0.0.1:8123"))

Reproduced: queue create/get/list/update/delete/pause/resume/purge with RateLimits and
RetryConfig (Cloud Tasks' defaults and limits); task create/get/list/delete/run with HTTP
targets, schedule times, dispatch deadlines and task-level retry config; task-name
de-duplication that outlives the task (``--name-retention``, bounded by ``--name-capacity``);
concurrent dispatch within maxConcurrentDispatches and a maxDispatchesPerSecond token bucket;
Cloud Tasks' backoff (doubling, then linear, capped); the X-CloudTasks-* headers; task
counters and attempts. OIDC tokens are emulator-only HS256 JWTs. State lives in memory only.
NOTES.md beside this file lists every difference from the real service.

Layout: ``server`` (REST surface) → ``emulator`` (the RPCs and their rules) → ``queue``
(scheduling and dispatch) → ``delivery`` (HTTP); ``wire`` maps Queue and Task resources to
protobuf JSON and back (its scalars in ``protojson``), ``config`` holds the retry/rate
policy, ``names`` the naming rules and the spent-name memory.
"""

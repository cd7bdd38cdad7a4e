"""Pure domain rules: state machines, backoff, ids, events. No I/O, no vendor imports."""

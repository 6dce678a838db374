"""Everything that exists only because the app can start its own Kafka and MongoDB (``embedded`` mode).

- ``stack``: ``LocalStack`` starts noida-db (a Kafka-protocol broker) and SecantusDB (a MongoDB-wire
  server) as child processes under one lock.
- ``supervisor``: ``Supervisor`` restarts one of them that died, on the port it had.
- ``trimmer``: ``Trimmer`` keeps the embedded broker under its size cap (noida-db keeps every message
  in one snapshot file and has no retention of its own).

Someone pointing the app at a real Kafka and MongoDB (``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI``)
runs none of this: ``runtime`` starts the stack and the trimmer only in embedded mode. The rest of the
pipeline carries a few workarounds for these two servers; each is tagged ``[embedded-broker
workaround]`` or ``[embedded-db workaround]`` in the code (grep ``embedded-``), with what was measured:

- ``consumer.IDLE_POLL_S`` (broker): noida-db 0.2.3 answers an empty FetchRequest at once whatever its
  ``max_wait_ms`` (1 ms measured with 500 ms asked): kafka-python then fetched ~780 times a second and
  the consumer's two threads used 84% of a core with six symbols at rest (the comment on
  ``IDLE_POLL_S``); the consumer rests 0.25 s after an empty poll (``bench/bench_rest.py``, issue 20's
  notes: the app process 95% before, under 4% after). A Kafka that honours the fetch wait needs
  ``STOCKMON_CONSUMER_IDLE_S=0``.
- ``consumer`` static membership and the join watchdog (broker): noida-db 0.2.3 never answers either
  JoinGroup when a second member's request reaches it as the first member's initial join delay
  (~300 ms) ends (6 of 7 pairs started 310-320 ms apart got no answer within 120 s); a static member
  (KIP-345) re-opened after ``JOIN_STUCK_S`` sends a fresh JoinGroup that completes the round.
- ``consumer._rewind`` and ``publisher.Publisher``'s replay buffer (broker): noida-db saves its log 1-2 s
  after a change, so a restart can bring back a shorter log than what was acknowledged and committed;
  the publisher re-publishes acknowledged records from a 10 s buffer and the consumer rewinds to the
  last stored time instead of skipping (both also cover a real Kafka's unclean leader election or a
  restored backup, so they stay with a real broker too).
- ``store.write_events`` insert-then-guard (database): on SecantusDB an update whose filter carries
  the revision guard (``fetched_at < new``) cannot use the unique index and scans; inserting first and
  guarding only the existing keys is ~20x faster there (measured when it was written).
- ``bars`` period ``STOCKMON_BAR_PERIOD_S`` = 5 s (database): a bar run costs 13 commands per symbol
  that ticked (counted in ``tests/test_bars_keep_up.py``); at rest app + servers took 11.8% of a core
  with a 1 s period and 8.6% with 5 s (the comment on ``config.BAR_PERIOD_S``). Issue 20's notes
  (a pymongo CommandListener; ``bench/bench_rest.py --symbols 50 --poll 1``): the builder sent 40 of
  the ~50 MongoDB commands a second at a 1 s period, and at 50 symbols on a 1 s poll SecantusDB
  saturated a core and answered bulk writes with "internal server error".
"""

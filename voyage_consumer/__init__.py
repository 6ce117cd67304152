"""The voyage consumer: booking status from payment events, idempotent and order-independent.

Modules, from the inside out (the layout every service shares, docs/writing-a-consumer.md):

* `facts`, `domain`, `anomalies`, `explain`: the pure core (no database, no Kafka):
  events become facts, a booking is a function of its set of facts (its confirmation
  number is `common.confirmation`'s, which notification's receipt shows too);
* `tables`, `store`: the tables and the set-based SQL on them;
* `handler`: the glue the run loop calls, one batch in one transaction (inbox, facts,
  derived rows, anomalies);
* `settings`, `service`, `cli` (and `__main__`), `status`: settings, wiring, the command line.
"""

"""The voyage consumer: booking status from payment events, idempotent and order-independent.

Modules, from the inside out:

* `facts`, `derivation`, `anomalies`, `explain`: the pure domain (no database, no Kafka):
  events become facts, a booking is a function of its set of facts (its confirmation
  number is `common.confirmation`'s, which notification's receipt shows too);
* `models`, `repository`: the tables and the set-based SQL on them;
* `apply`: one batch in one transaction (inbox, facts, derived rows, anomalies);
* `handler`, `service`, `status`, `__main__`: the glue to the shared run loop and the CLI.
"""

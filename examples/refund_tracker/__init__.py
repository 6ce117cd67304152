"""The consumer docs/writing-a-consumer.md walks through: refund totals per currency.

Laid out as every service is (one name per role): `domain` (pure), `handler` (the glue the
run loop calls), `tables`, `store`, `settings`, `service` (`build`), `cli` and `__main__`.
"""

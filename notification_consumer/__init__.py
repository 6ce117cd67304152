"""The notification service: payment receipts, failure notices and refund confirmations.

Reads the payment topics as consumer group `notification-service` and emails the user:
`payment.completed` → receipt with the booking's confirmation number, `payment.failed` →
failure notice with a retry link for each failed attempt (unless the booking is already
paid), `payment.refunded` → refund confirmation. `payment.initiated` sends nothing; what it
says (method, time) enriches the later emails.

Modules, from pure to effectful: `domain` (what to do), `formatting` and `rendering`
(templates → `Email`), `message` (MIME), `smtp` (the adapter), `tables` and `store`
(the database), `handler` (the batch glue), `settings`, `service` (wiring), `cli` (the
command line, `__main__` only calls it) and `preview` (its template authors' tool).
See docs/notification.md.
"""

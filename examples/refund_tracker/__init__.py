"""The consumer docs/writing-a-consumer.md walks through: refund totals per currency."""

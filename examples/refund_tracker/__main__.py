"""`python -m examples.refund_tracker`: the command line of `cli`."""

from examples.refund_tracker.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

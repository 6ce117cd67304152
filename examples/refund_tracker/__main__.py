"""`python -m examples.refund_tracker`: run the refund tracker until SIGTERM or SIGINT."""

from common.service import run_service
from examples.refund_tracker.consumer import NAME, RefundTrackerSettings, build

if __name__ == "__main__":
    raise SystemExit(run_service(RefundTrackerSettings, build, service=NAME))

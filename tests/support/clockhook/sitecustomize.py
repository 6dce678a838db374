"""Imported by every Python process started while a test run's clock is shifted (see
``tests/support/clock.py``): applies the same offset to this process, so children agree with pytest."""

import os

TRAVELLER = None
if os.environ.get("STOCKMON_TEST_CLOCK_OFFSET"):
    import time

    import time_machine

    TRAVELLER = time_machine.travel(time.time() + float(os.environ["STOCKMON_TEST_CLOCK_OFFSET"]), tick=True)
    TRAVELLER.start()

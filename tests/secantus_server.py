"""SecantusDB's server as the tests run it: `python tests/secantus_server.py <its flags>`.

SecantusDB keeps the reply of every retryable write 30 minutes, up to 10,000 of them, and scans
them all at every write, sorting them once there are 10,000. Our suite writes that many in its
first minutes, after which each MongoDB write took 11 ms instead of 0.7 and the MongoDB tests
twice as long. A driver retries a write at once, so keeping the replies 10 s keeps every retry
the tests can make exactly-once (mongod keeps them 30 minutes: a real server is unaffected).
"""

import secantus.transactions
from secantus.cli import main

RETRYABLE_REPLIES_KEPT_SECONDS = 10.0

if __name__ == "__main__":
    secantus.transactions._RETRYABLE_RECORD_LIFETIME_SECONDS = RETRYABLE_REPLIES_KEPT_SECONDS
    raise SystemExit(main())

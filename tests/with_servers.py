"""Run a command with one PostgreSQL and one MongoDB test server for the whole of it.

    python -m tests.with_servers COMMAND [ARG...]

The command sees SESSIONMETER_TEST_POSTGRES_URL and SESSIONMETER_TEST_MONGODB_URI, so every
pytest it starts uses these servers instead of starting its own (`make mutants` runs one pytest
per mutant: a server per pytest would cost more than most mutants' tests). Servers already named
by those variables are used as they are.
"""

import os
import subprocess
import sys

from tests.servers import MongoServer, PostgresServer


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with PostgresServer() as postgres, MongoServer() as mongodb:
        env = {
            **os.environ,
            "SESSIONMETER_TEST_POSTGRES_URL": postgres.url,
            "SESSIONMETER_TEST_MONGODB_URI": mongodb.url,
        }
        return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A server worker's collector is tuned for serving once its app is built (the factory uvicorn
calls in each worker), in a process of its own: a frozen heap outlives everything else in it."""

import os
import subprocess
import sys
from pathlib import Path

from entrypoints.http.garbage_collector import YOUNG_GENERATION_THRESHOLD

WORKER = """
import gc
from entrypoints.http.app import app_from_env
app_from_env()
print(gc.get_threshold()[0], gc.get_freeze_count())
"""


def test_a_workers_app_is_frozen_out_of_the_collectors_sight(tmp_path: Path) -> None:
    env = {**os.environ, "SESSIONMETER_STORAGE_URL": f"sqlite:///{tmp_path}/meter.db"}
    ran = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True
    )
    threshold, frozen = map(int, ran.stdout.split())

    assert threshold == YOUNG_GENERATION_THRESHOLD
    # The app's heap, not a handful of objects: routes, schemas, tables, drivers.
    assert frozen > 100_000, frozen

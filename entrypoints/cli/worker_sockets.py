"""Several server workers, each listening on a socket of its own (Linux's SO_REUSEPORT).

uvicorn's workers share the one socket its parent bound, and a connection goes to whichever
worker accepts first: a worker woken by a burst of new connections accepts them all. Clients
that keep their connections (a proxy's pool, a LiveKit server, the benchmarks) then all talk to
one worker while the others idle. On 2 workers and 2 cores, one worker held every connection in
about half the runs of the ingest benchmark's clients: 16,500 events/s against 21,700-26,000 when
they were spread. With a socket of its own per worker, the kernel spreads the connections over
the workers by their addresses; a worker replaced by uvicorn binds one again.
"""

import logging
import socket
import sys
from dataclasses import dataclass
from typing import Any

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "entrypoints.http.app:app_from_env"


def run_server(**options: Any) -> None:
    """uvicorn.run of the app with these options; several workers on Linux on sockets of their
    own (elsewhere SO_REUSEPORT does not spread connections, so they share one)."""
    if options.get("workers", 1) > 1 and sys.platform == "linux":
        _run_workers(uvicorn.Config(APP, **options))
    else:
        uvicorn.run(APP, **options)


@dataclass(frozen=True)
class OwnSocket:
    """Where each worker listens. Handed to a worker (pickled, as uvicorn hands its sockets), it
    arrives as a new socket bound there, joining the others' SO_REUSEPORT group."""

    host: str
    port: int

    def __reduce__(self) -> tuple[Any, tuple[str, int, bool]]:
        return (bound_socket, (self.host, self.port, True))  # shared


def bound_socket(host: str, port: int, shared: bool) -> socket.socket:
    """A socket bound there, reusing the addresses of connections still closing; `shared`, it
    joins the port's SO_REUSEPORT group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.socket(family)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind((host, port))
    return bound


def _run_workers(config: uvicorn.Config) -> None:
    # The parent holds the port (a taken one fails here, before any worker starts), and never
    # listens on it: only listening sockets are given connections. It holds it outside the
    # SO_REUSEPORT group: a server listening there already, another sessionmeter's workers
    # included, refuses it, where joining their group would silently split the traffic.
    try:
        held = bound_socket(config.host, config.port, shared=False)
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on {config.host}:{config.port}: {error.strerror}"
        ) from None
    with held:
        port = held.getsockname()[1]
        address = f"[{config.host}]" if ":" in config.host else config.host
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running on http://%s:%d with %d workers, a socket each",
            address,
            port,
            config.workers,
        )
        # uvicorn only hands the sockets on to its workers, which is what OwnSocket is for.
        Multiprocess(config, sockets=[OwnSocket(config.host, port)]).run()  # type: ignore[list-item]

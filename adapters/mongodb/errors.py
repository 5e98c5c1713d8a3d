"""The MongoDB family's driver errors, raised to the application as StorageError.

Every pymongo error that escapes an adapter method: the methods catch those that carry a
meaning themselves (a DuplicateKeyError is a key already taken), so what is left is the server
failing (unreachable, refusing the credentials or the command). pymongo wraps socket errors in
its own (AutoReconnect).
"""

import re

from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

from adapters.driver_errors import first_line, translating

# What pymongo appends to each server's error: its own timeouts, then the whole topology.
_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")
_TOPOLOGY = ", Topology Description: "


def described(error: Exception) -> str:
    """The driver's first line; when no server could be used (none answered, or none that did
    fits: another replica set's, a secondary where a primary is wanted), why, without the
    topology pymongo describes after it (some 700 characters for one server)."""
    if isinstance(error, ServerSelectionTimeoutError):
        servers, _, timeout = str(error).partition(_TOPOLOGY)[0].rpartition(", Timeout: ")
        if servers:
            return f"no MongoDB server to use within {timeout}: {_TIMEOUTS.sub('', servers)}"
    return first_line(error)


raises_storage_errors = translating(PyMongoError, describe=described)

"""The MongoDB family's driver errors, raised to the application as StorageError.

Every pymongo error that escapes an adapter method: the methods catch those that carry a
meaning themselves (a DuplicateKeyError is a key already taken), so what is left is the server
failing (unreachable, refusing the credentials or the command). pymongo wraps socket errors in
its own (AutoReconnect).
"""

from pymongo.errors import PyMongoError

from adapters.driver_errors import translating

raises_storage_errors = translating(PyMongoError)

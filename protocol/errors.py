"""The one error type the protocol raises."""


class ProtocolError(ValueError):
    """Bytes or messages that break the vsa protocol.

    Every decoder and state machine in `vsa.protocol` raises this, and only
    this, for bad input: malformed msgpack, a wrong type or range, a size over
    its bound, a message out of order, a hash mismatch or a truncated file.
    The message names the field, the value and the limit.
    """


class SessionFailed(ProtocolError):
    """A failure the session cannot recover from, such as a transferred blob whose bytes do not match the hash
    the hello named: the session is closed, and the end that found it says why in a `Bye` to its peer."""

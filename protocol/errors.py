"""The one error type the protocol raises."""


class ProtocolError(ValueError):
    """Bytes or messages that break the vsa protocol.

    Every decoder and state machine in `vsa.protocol` raises this, and only
    this, for bad input: malformed msgpack, a wrong type or range, a size over
    its bound, a message out of order, a hash mismatch or a truncated file.
    The message names the field, the value and the limit.
    """

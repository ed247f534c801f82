"""The vsa wire and file format, sans-I/O.

Nothing here touches a socket, a file or an event loop, and nothing here
imports the rest of vsa: transports (the `.vsa` file container, aiortc data
channels) feed bytes in and get messages out.
"""

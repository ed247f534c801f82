"""The architectures vsa ships. Importing this module registers them (`vsa.common.registry`).

A new architecture is a new module with a class decorated by
`vsa.common.registry.register`, plus one import line here.
"""

from . import inrv, model, srnet  # noqa: F401

__all__ = ["inrv", "model", "srnet"]

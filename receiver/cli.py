"""`vrecv`: receive and reconstruct a live vsa stream."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "vrecv: live streaming over WebRTC is not built yet (see the streaming issue).\n"
        "Use the offline file mode meanwhile: vsa decode clip.vsa -o out.mp4",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())

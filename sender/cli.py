"""`vsend`: stream a video over WebRTC data channels."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "vsend: live streaming over WebRTC is not built yet (see the streaming issue).\n"
        "Use the offline file mode meanwhile: vsa encode VIDEO --model ae.pt -o clip.vsa",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())

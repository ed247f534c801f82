"""protocol/ is sans-I/O and imports nothing of ours."""

import ast
from pathlib import Path

import vsa.protocol

FORBIDDEN = {"asyncio", "socket", "selectors", "aiortc", "av", "torch", "vsa", "common", "sender", "receiver",
             "tools", "threading", "subprocess"}


def test_protocol_imports_no_io_and_nothing_of_ours():
    folder = Path(vsa.protocol.__file__).parent
    offenders = []
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders
    assert len(list(folder.glob("*.py"))) >= 4

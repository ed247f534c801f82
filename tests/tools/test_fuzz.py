"""`vsa fuzz`: every decoder fed generated inputs, and what escapes is caught and shown."""

import json

from vsa.tools import fuzz
from vsa.tools.cli import main as vsa_main


def test_every_decoder_refuses_bad_input_with_its_own_error_only(tmp_path):
    out = tmp_path / "fuzz.json"
    assert vsa_main(["fuzz", "--examples", "400", "-o", str(out)]) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == set(fuzz.TARGETS)
    for r in results.values():
        assert r["inputs"] == 400 and r["escaped"] == 0, r
        # The generator reaches both sides of every decoder: inputs it refuses, and valid ones it takes.
        assert r["refused"] > 40 and r["accepted"] > 0, r


def test_an_error_other_than_the_decoders_own_is_reported_with_its_input():
    def fragile(data: bytes) -> None:
        if len(data) > 8:
            raise KeyError("a bug")
        raise ValueError("refused")

    target = fuzz.Target("fragile", fragile, (ValueError,), [b"0123456789"])
    result = fuzz.fuzz(target, 200, seed=1)
    assert result.escaped > 0 and result.refused > 0 and result.escaped + result.refused == 200
    assert result.first_escape.startswith("KeyError") and len(bytes.fromhex(result.escape_input)) > 8
    # The same seed gives the same inputs.
    assert fuzz.fuzz(target, 200, seed=1).escaped == result.escaped

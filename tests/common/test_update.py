"""Model updates: what the sender computes is what the receiver gets, to the bit; a bad update changes nothing."""

import msgpack
import pytest
import torch
import zstandard

from vsa.common import bases, bundle as bundle_mod
from vsa.common.update import MAGIC, UpdateError, UpdateGrid, apply_update, make_update, state_digest


@pytest.fixture(scope="module")
def base():
    return bundle_mod.from_wire(bases.load_base()[0])


def moved(state, grid, seed=0):
    """``state`` with every weight a stream at scale 4 runs nudged by a few grid steps, at random."""
    g = torch.Generator().manual_seed(seed)
    out = dict(state)
    for name, step in grid.steps.items():
        out[name] = state[name] + torch.randn(state[name].shape, generator=g) * 3 * step
    return out


def test_an_update_gives_the_receiver_exactly_the_weights_the_sender_computed(base):
    grid = UpdateGrid.for_model(base, 4)
    assert grid.steps and all(name.startswith("branches.x4.") for name in grid.steps)
    current = base.network_state()
    data, state, changed = make_update(moved(current, grid), current, grid, keep=500)
    assert data.startswith(MAGIC) and changed == 500 and len(data) < 2000
    received = apply_update(data, current, grid)
    assert state_digest(received) == state_digest(state) != state_digest(current)
    assert sum(int((received[n] != current[n]).sum()) for n in current) == 500
    # Nothing the stream does not run changes.
    assert all(torch.equal(received[n], current[n]) for n in current if n not in grid.steps)


def test_the_entries_that_moved_most_are_the_ones_kept(base):
    grid = UpdateGrid.for_model(base, 4)
    current = base.network_state()
    name = next(iter(n for n in grid.steps if n.endswith("decoder.0.weight")))
    target = dict(current)
    target[name] = current[name].clone()
    target[name].view(-1)[7] += 40 * grid.steps[name].reshape(-1)[0]
    target[name].view(-1)[9] += 2 * grid.steps[name].reshape(-1)[0]
    _, state, changed = make_update(target, current, grid, keep=1)
    assert changed == 1 and state[name].view(-1)[7] != current[name].view(-1)[7]
    assert state[name].view(-1)[9] == current[name].view(-1)[9]


def _blob(names, body):
    c = zstandard.ZstdCompressor()
    head = c.compress(msgpack.packb({"tensors": names}))
    return MAGIC + b"\x01" + len(head).to_bytes(4, "big") + head + c.compress(body)


@pytest.mark.parametrize("data, needle", [
    (b"nope", "bad magic"),
    (MAGIC + b"\x09" + bytes(8), "format 9"),
    (_blob(["branches.x8.decoder.0.weight"], b"\x01"), "cannot change"),
    (_blob(["not.a.tensor"], b"\x01"), "cannot change"),
    (_blob([], b""), "names no tensors"),
    (_blob(["branches.x4.decoder.0.bias"], b"\x01"), "holds 1 bytes"),
    # A zstd bomb: a frame that would decompress to far more than the tensor it names.
    (_blob(["branches.x4.decoder.0.bias"], bytes(50_000_000)), "more than"),
])
def test_a_malformed_update_is_refused_and_changes_nothing(base, data, needle):
    grid = UpdateGrid.for_model(base, 4)
    current = base.network_state()
    before = state_digest(current)
    with pytest.raises(UpdateError, match=needle):
        apply_update(data, current, grid)
    assert state_digest(current) == before

import hashlib
from dataclasses import replace

import pytest

from vsa.protocol.errors import ProtocolError, SessionFailed
from vsa.protocol.messages import Bye, Frame, Hello, ModelChunk, ModelRequest, ModelUpdate, Ready
from vsa.protocol.session import (
    FrameReceived, ModelProgress, ModelReady, ModelWanted, PeerClosed, PeerReady, ReceiverSession, SenderSession,
    State, StreamEnded, StreamStarted, UpdateReceived,
)

WIRE = bytes(range(256)) * 40
SHA = hashlib.sha256(WIRE).digest()
HELLO = Hello(width=256, height=192, fps=30.0, scale=4, stride=2, codec="webp", model_sha256=SHA,
              model_size=len(WIRE))


def full_stream():
    sender = SenderSession(HELLO)
    msgs = [sender.start(), *sender.model_chunks(WIRE, chunk_size=3000)]
    msgs += [sender.frame(pts=2 * i, keyframe=True, payload=b"p") for i in range(3)]
    return msgs + [sender.bye("done")]


def test_sender_and_receiver_agree_on_a_whole_stream():
    receiver = ReceiverSession()
    events = [e for m in full_stream() for e in receiver.receive(m)]
    assert isinstance(events[0], StreamStarted)
    progress = [e for e in events if isinstance(e, ModelProgress)]
    assert [p.received for p in progress] == [3000, 6000, 9000, len(WIRE)]
    ready = [e for e in events if isinstance(e, ModelReady)]
    assert len(ready) == 1 and ready[0].wire == WIRE
    frames = [e.frame for e in events if isinstance(e, FrameReceived)]
    assert [f.pts for f in frames] == [0, 2, 4] and [f.seq for f in frames] == [0, 1, 2]
    assert isinstance(events[-1], StreamEnded) and receiver.state is State.CLOSED


def test_corrupted_model_fails_the_hash_check():
    msgs = full_stream()
    chunk = msgs[2]
    msgs[2] = ModelChunk(chunk.offset, chunk.total, chunk.sha256, b"\x00" * len(chunk.data))
    receiver = ReceiverSession()
    with pytest.raises(SessionFailed, match="SHA-256"):
        for m in msgs:
            receiver.receive(m)
    # The session is over: the receiver says why, and the sender learns it.
    assert receiver.state is State.CLOSED
    with pytest.raises(ProtocolError, match="after bye"):
        receiver.receive(msgs[-2])
    sender = SenderSession(HELLO)
    sender.start()
    assert sender.receive(ModelRequest(0)) == [ModelWanted(0, SHA)]
    bye = receiver.bye("model SHA-256 does not match the hello: transfer corrupted")
    assert isinstance(bye, Bye)
    assert sender.receive(bye) == [PeerClosed("model SHA-256 does not match the hello: transfer corrupted")]
    assert sender.state is State.CLOSED


@pytest.mark.parametrize(
    "sequence, needle",
    [
        (lambda m: [m[-2]], "before hello"),
        (lambda m: [m[0], m[0]], "second hello"),
        (lambda m: [m[0], m[2]], "offset 3000, expected 0"),
        (lambda m: [*m[:5], m[1]], "after the model was complete"),
        (lambda m: [*m[:5], m[6], m[5]], "does not follow"),
        (lambda m: [*m, m[5]], "after bye"),
        (lambda m: [m[0], ModelChunk(0, 10, b"\x01" * 32, b"x")], "different model"),
    ],
)
def test_receiver_rejects_messages_out_of_order(sequence, needle):
    receiver = ReceiverSession()
    with pytest.raises(ProtocolError, match=needle):
        for m in sequence(full_stream()):
            receiver.receive(m)


def test_unordered_receiver_accepts_reordered_frames():
    msgs = full_stream()
    receiver = ReceiverSession(ordered=False)
    for m in [*msgs[:5], msgs[6], msgs[5]]:
        receiver.receive(m)
    assert receiver.frames_received == 2


def test_cached_model_skips_the_transfer():
    receiver = ReceiverSession()
    receiver.receive(HELLO)
    receiver.model_cached()
    events = receiver.receive(Frame(0, 0, True, b"p"))
    assert isinstance(events[0], FrameReceived)


def test_sender_enforces_its_own_order():
    sender = SenderSession(HELLO)
    with pytest.raises(ProtocolError):
        sender.frame(0, True, b"p")
    sender.start()
    with pytest.raises(ProtocolError, match="do not match"):
        sender.model_chunks(WIRE[:-1])
    sender.model_chunks(WIRE)
    sender.bye()
    with pytest.raises(ProtocolError):
        sender.bye()


def _started_sender():
    sender = SenderSession(HELLO)
    sender.start()
    return sender


def test_sender_follows_the_receivers_replies():
    from vsa.protocol.messages import KeyframeRequest, ModelRequest, Ready, Stats
    from vsa.protocol.session import KeyframeWanted, ModelWanted, PeerReady, PeerStats

    sender = _started_sender()
    (wanted,) = sender.receive(ModelRequest(0))
    assert wanted == ModelWanted(0, SHA)
    assert len(sender.model_chunks(WIRE, 3000, offset=wanted.offset)) == 4
    assert not sender.peer_ready
    assert sender.receive(Ready()) == [PeerReady()] and sender.peer_ready
    assert isinstance(sender.receive(KeyframeRequest(3))[0], KeyframeWanted)
    assert isinstance(sender.receive(Stats(received=1))[0], PeerStats)


def test_a_receiver_with_the_model_cached_skips_the_transfer():
    from vsa.protocol.messages import Ready

    sender = _started_sender()
    sender.receive(Ready())
    assert sender.state is State.STREAMING
    assert sender.frame(0, True, b"p").seq == 0


@pytest.mark.parametrize("needle", ["before the hello", "sent to receivers", "model requested in", "second ready",
                                    "offset 10240"])
def test_sender_rejects_replies_out_of_order(needle):
    from vsa.protocol.messages import ModelRequest, Ready

    sender = SenderSession(HELLO)
    with pytest.raises(ProtocolError, match=needle):
        if needle == "before the hello":
            sender.receive(Ready())
        sender.start()
        if needle == "sent to receivers":
            sender.receive(HELLO)
        if needle == "offset 10240":
            sender.receive(ModelRequest(len(WIRE)))
        sender.receive(Ready())
        if needle == "model requested in":
            sender.receive(ModelRequest(0))
        sender.receive(Ready())


def test_receiver_rejects_messages_meant_for_the_sender():
    from vsa.protocol.messages import Stats

    receiver = ReceiverSession()
    with pytest.raises(ProtocolError, match="sent by receivers"):
        receiver.receive(Stats())


# --- a model in two blobs: a delta and the base it applies to ------------------------------------

BASE = bytes(reversed(range(256))) * 30
BASE_SHA = hashlib.sha256(BASE).digest()
DELTA_HELLO = Hello(width=256, height=192, fps=30.0, scale=4, stride=2, codec="h264", model_sha256=SHA,
                    model_size=len(WIRE), base_sha256=BASE_SHA, base_size=len(BASE))


def test_a_receiver_without_the_base_gets_both_blobs_base_first():
    from vsa.protocol.messages import ModelRequest

    sender, receiver = SenderSession(DELTA_HELLO), ReceiverSession()
    receiver.receive(sender.start())
    assert receiver.wanted == [BASE_SHA, SHA]  # the order a receiver asks in
    for sha in receiver.wanted:
        (wanted,) = sender.receive(ModelRequest(0, sha))
        assert wanted.sha256 == sha
    assert sender.state is State.WAIT_MODEL  # the base alone does not end the model phase
    events = [e for c in sender.model_chunks(BASE, 3000) for e in receiver.receive(c)]
    assert not any(isinstance(e, ModelReady) for e in events) and receiver.state is State.WAIT_MODEL
    events = [e for c in sender.model_chunks(WIRE, 3000) for e in receiver.receive(c)]
    (ready,) = [e for e in events if isinstance(e, ModelReady)]
    assert ready.blobs == {BASE_SHA: BASE, SHA: WIRE} and ready.wire == WIRE
    assert receiver.state is State.STREAMING and sender.state is State.STREAMING


def test_a_receiver_holding_the_base_is_sent_only_the_delta():
    sender, receiver = SenderSession(DELTA_HELLO), ReceiverSession()
    receiver.receive(sender.start())
    receiver.have(BASE_SHA)
    assert receiver.wanted == [SHA]
    events = [e for c in sender.model_chunks(WIRE, 5000) for e in receiver.receive(c)]
    (ready,) = [e for e in events if isinstance(e, ModelReady)]
    assert ready.blobs == {SHA: WIRE}


@pytest.mark.parametrize("case, needle", [
    ("unknown blob", "different model"),
    ("frame before the base", "before the model was complete"),
    ("have twice", "does not name"),
    ("wrong total", "the hello 7680"),
])
def test_blob_transfers_are_checked(case, needle):
    sender, receiver = SenderSession(DELTA_HELLO), ReceiverSession()
    receiver.receive(sender.start())
    with pytest.raises(ProtocolError, match=needle):
        if case == "unknown blob":
            receiver.receive(ModelChunk(0, 10, b"\x02" * 32, b"x"))
        elif case == "frame before the base":
            for chunk in sender.model_chunks(WIRE, 5000):
                receiver.receive(chunk)
            receiver.receive(Frame(0, 0, True, b"p"))
        elif case == "have twice":
            receiver.have(BASE_SHA)
            receiver.have(BASE_SHA)
        else:
            receiver.receive(ModelChunk(0, len(BASE) + 1, BASE_SHA, b"x"))


def test_the_sender_serves_only_the_blobs_its_hello_names():
    from vsa.protocol.messages import ModelRequest

    sender = SenderSession(DELTA_HELLO)
    sender.start()
    with pytest.raises(ProtocolError, match="does not name"):
        sender.receive(ModelRequest(0, b"\x07" * 32))
    with pytest.raises(ProtocolError, match="do not match"):
        sender.model_chunks(b"something else")


def adapting_stream():
    sender = SenderSession(replace(HELLO, adapt=True))
    msgs = [sender.start(), *sender.model_chunks(WIRE, chunk_size=3000), sender.frame(0, True, b"p")]
    msgs += [sender.update(b"\x01" * 32, b"\x02" * 32, b"delta"), sender.frame(2, False, b"p")]
    msgs += [sender.update(b"\x02" * 32, b"\x03" * 32, b"delta"), sender.frame(4, False, b"p")]
    return sender, msgs


def test_updates_count_versions_and_frames_say_which_they_were_coded_for():
    sender, msgs = adapting_stream()
    receiver = ReceiverSession()
    events = [e for m in msgs for e in receiver.receive(m)]
    frames = [e.frame.model_version for e in events if isinstance(e, FrameReceived)]
    updates = [e.update.version for e in events if isinstance(e, UpdateReceived)]
    assert frames == [0, 1, 2] and updates == [1, 2] and receiver.update_version == 2
    assert sender.receive(Ready(adapt=True)) == [PeerReady(adapt=True)] and sender.peer_adapts


@pytest.mark.parametrize(
    "sequence, needle",
    [
        (lambda m: [*m[:5], m[-2]], "does not follow update 0"),
        (lambda m: [*m[:7], m[6]], "does not follow update 1"),
        (lambda m: [m[0], m[6]], "before the model was complete"),
    ],
)
def test_updates_out_of_turn_are_refused(sequence, needle):
    receiver = ReceiverSession()
    with pytest.raises(ProtocolError, match=needle):
        for m in sequence(adapting_stream()[1]):
            receiver.receive(m)


def test_updates_need_a_hello_that_announces_them():
    sender = SenderSession(HELLO)
    sender.start()
    sender.skip_model()
    with pytest.raises(ProtocolError, match="did not announce"):
        sender.update(b"\x01" * 32, b"\x02" * 32, b"delta")
    receiver = ReceiverSession()
    receiver.receive(HELLO)
    receiver.model_cached()
    with pytest.raises(ProtocolError, match="did not announce"):
        receiver.receive(ModelUpdate(1, b"\x01" * 32, b"\x02" * 32, b"delta"))
    # A receiver that cannot adapt says so, and the sender then sends it no updates.
    sender2 = SenderSession(replace(HELLO, adapt=True))
    sender2.start()
    sender2.receive(Ready())
    assert not sender2.peer_adapts


def test_a_frame_at_another_scale_says_so_and_one_that_does_not_fit_the_stream_is_refused():
    sender = SenderSession(HELLO)
    sender.start()
    sender.skip_model()
    assert sender.frame(0, True, b"x", scale=4).scale == 0  # the hello's: nothing to say
    assert sender.frame(1, True, b"x", scale=2).scale == 2
    with pytest.raises(ProtocolError, match="does not divide"):
        sender.frame(2, True, b"x", scale=5)
    receiver = ReceiverSession()
    receiver.receive(HELLO)
    receiver.model_cached()
    assert isinstance(receiver.receive(Frame(0, 0, True, b"p", scale=8))[0], FrameReceived)
    with pytest.raises(ProtocolError, match="does not divide"):
        receiver.receive(Frame(1, 1, True, b"p", scale=5))


def test_feedback_on_the_media_channel_only_when_the_hello_offers_it_and_old_reports_are_dropped():
    from vsa.protocol.messages import KeyframeRequest, Nack, Stats
    from vsa.protocol.session import FramesWanted, KeyframeWanted, PeerStats

    plain = _started_sender()
    plain.receive(Ready())
    with pytest.raises(ProtocolError, match="did not offer"):
        plain.receive_feedback(Nack(3))

    sender = SenderSession(HELLO)
    sender.offer_feedback()
    hello = sender.start()
    assert hello.feedback
    with pytest.raises(ProtocolError, match="after the hello"):
        sender.offer_feedback()
    # Overtaking `Ready` on the unordered channel says nothing yet, and is no error.
    assert sender.receive_feedback(Stats(received=1)) == []
    sender.receive(Ready())
    assert sender.receive_feedback(Nack(3, 0b1)) == [FramesWanted(Nack(3, 0b1))]
    assert isinstance(sender.receive_feedback(KeyframeRequest(2))[0], KeyframeWanted)
    assert isinstance(sender.receive_feedback(Stats(received=10))[0], PeerStats)
    assert sender.receive_feedback(Stats(received=9)) == []  # overtaken by a newer one
    assert isinstance(sender.receive(Stats(received=12))[0], PeerStats)  # the same rule on control
    with pytest.raises(ProtocolError, match="does not belong on the media channel"):
        sender.receive_feedback(Ready())
    sender.bye()
    assert sender.receive_feedback(Nack(4)) == [FramesWanted(Nack(4))]  # the last frames, after the bye

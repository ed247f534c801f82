import asyncio
import time

import pytest

from vsa.common import webrtc


@pytest.mark.parametrize("text, expected", [("127.0.0.1:9000", ("127.0.0.1", 9000)), (":9", ("127.0.0.1", 9)),
                                            ("[::1]:80", ("::1", 80)), ("host", ("host", webrtc.DEFAULT_PORT))])
def test_parse_address(text, expected):
    assert webrtc.parse_address(text) == expected


def test_listening_beyond_loopback_needs_a_token():
    with pytest.raises(webrtc.SignalingError, match="needs a shared token"):
        webrtc.SignalingServer("0.0.0.0", 0)
    webrtc.SignalingServer("0.0.0.0", 0, token="t")  # fine with one
    webrtc.SignalingServer("127.0.0.1", 0)  # loopback needs none


async def _offer(port, token, timeout=5.0):
    pc = webrtc.make_peer()
    pc.createDataChannel(webrtc.CONTROL_LABEL)
    try:
        await webrtc.connect_and_offer(pc, "127.0.0.1", port, token=token, timeout=timeout, bind="127.0.0.1")
    finally:
        await pc.close()


async def _answer_next(server):
    """Answer the next offer ``server`` accepts; the answering peer connection, for the caller to close."""
    offer = await server.next_offer(5)
    pc = webrtc.make_peer()
    await offer.answer(pc, bind="127.0.0.1")
    return pc


async def test_a_wrong_token_is_refused_and_the_right_one_accepted():
    server = webrtc.SignalingServer("127.0.0.1", 0, token="right")
    await server.start()
    try:
        with pytest.raises(webrtc.SignalingError, match="wrong or missing token"):
            await _offer(server.port, "wrong")
        with pytest.raises(webrtc.SignalingError, match="wrong or missing token"):
            await _offer(server.port, None)
        assert server.refused == 2

        answering = asyncio.create_task(_answer_next(server))
        await _offer(server.port, "right")
        await (await answering).close()
    finally:
        await server.close()


async def test_a_sender_with_a_token_refuses_an_answer_from_a_receiver_without_it():
    """A receiver that does not hold the token (here one with none: it answers anything) cannot pass its
    answer off as authentic, so a man in the middle cannot swap the receiver's SDP."""
    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    try:
        answering = asyncio.create_task(_answer_next(server))
        with pytest.raises(webrtc.SignalingError, match="refused the receiver's answer: the answer is not "
                                                        "authenticated"):
            await _offer(server.port, "right")
        await (await answering).close()
    finally:
        await server.close()


async def test_connect_retries_until_the_receiver_is_up_and_gives_up_in_time():
    start = time.monotonic()
    with pytest.raises(webrtc.SignalingError, match="no receiver at 127.0.0.1:1 after 0.5 s"):
        await _offer(1, None, timeout=0.5)
    assert time.monotonic() - start < 3

    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    port = server.port
    await server.close()

    async def late_receiver():
        await asyncio.sleep(0.4)
        late = webrtc.SignalingServer("127.0.0.1", port)
        await late.start()
        offer = await late.next_offer(5)
        pc = webrtc.make_peer()
        await offer.answer(pc, bind="127.0.0.1")
        await late.close()
        return pc

    task = asyncio.create_task(late_receiver())
    await _offer(port, None)
    await (await task).close()

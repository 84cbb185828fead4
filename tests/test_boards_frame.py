"""The shared frame core of the two host links (issue 15): one model, one gateware core, one
host core, each board adding only its own commands."""

import inspect

import pytest
from lifgate.boards import framehost, framelink, frameproto
from lifgate.boards.host import Board, ModelTransport
from lifgate.boards.link import HostLink
from lifgate.boards.nethost import NetModelTransport, NetworkBoard
from lifgate.boards.netlink import NetworkLink
from lifgate.boards.netproto import NET_COMMANDS, NetFeatures, NetworkBoardModel
from lifgate.boards.protocol import COMMANDS, BoardModel, Features

from lifgate.config import ArrayShape

SHAPE = ArrayShape(neurons=8, lanes=2, groups=2, v_width=8, i_width=6)
NET_FEATURES = NetFeatures((SHAPE, ArrayShape(neurons=4, lanes=1, groups=1, v_width=8)), 8)


def test_models_share_the_frame_core():
    for cls in (BoardModel, NetworkBoardModel):
        assert issubclass(cls, frameproto.LinkModel)
    assert not issubclass(NetworkBoardModel, BoardModel)
    # Each model's table is exactly its protocol's command list.
    assert [c.code for c in BoardModel(Features(SHAPE)).commands()] == list(COMMANDS)
    assert {c.code for c in NetworkBoardModel(NET_FEATURES).commands()} == set(NET_COMMANDS)


def test_links_share_the_frame_core():
    for cls in (HostLink, NetworkLink):
        assert issubclass(cls, framelink.LinkComponent)


def test_hosts_share_the_frame_core_and_nothing_else():
    assert issubclass(Board, framehost.LinkHost)
    assert issubclass(NetworkBoard, framehost.LinkHost)
    assert not issubclass(NetworkBoard, Board)
    board = NetworkBoard(NetModelTransport(NET_FEATURES))
    for name in ("set_noise", "set_input", "status", "run", "version"):
        method = getattr(board, name, None)
        # A network board has no array command it cannot answer; the ones both have are its own.
        if method is not None:
            assert inspect.getmodule(method).__name__ == "lifgate.boards.nethost", name
    assert not hasattr(board, "set_noise") and not hasattr(board, "set_input")
    assert Board(ModelTransport(Features(SHAPE))).features == Features(SHAPE)


@pytest.mark.parametrize("cls", [BoardModel, NetworkBoardModel])
def test_unknown_command_and_length_come_from_the_core(cls):
    model = cls(Features(SHAPE) if cls is BoardModel else NET_FEATURES)
    model.receive(frameproto.encode_frame(0x7E))
    model.receive(b"")
    model.idle()
    model.receive(frameproto.encode_frame(0x01, b"x"))  # VERSION takes no payload
    replies = frameproto.FrameDecoder(1 << 16).decode(model.read())
    assert [(r.cmd, r.payload) for r in replies] == [
        (0xFF, bytes([frameproto.ErrorCode.UNKNOWN, 0x7E])),
        (0xFF, bytes([frameproto.ErrorCode.LENGTH, 0x01])),
    ]

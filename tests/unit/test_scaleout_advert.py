"""The pure part of scale-out: adverts and the choice of a peer to redirect to."""

from __future__ import annotations

import pytest

from stream.scaleout.advert import Advert, Keys, pick_peer, redirect_location

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def advert(worker: str, streams: int, max_streams: int = 4, age_s: float = 0.5) -> Advert:
    return Advert(worker, f"http://{worker}:8080", streams, max_streams, NOW - age_s)


def test_advert_round_trips_through_json() -> None:
    a = Advert("w1", "http://10.0.0.5:8080", 3, 16, NOW)
    assert Advert.decode(a.encode()) == a
    assert Advert.decode(a.encode().encode()) == a


@pytest.mark.parametrize("raw", ["", "{}", "[1]", '{"worker_id":"w","url":"u","streams":"x"}'])
def test_malformed_advert_is_ignored(raw: str) -> None:
    assert Advert.decode(raw) is None


def test_trailing_slash_of_url_is_dropped() -> None:
    raw = '{"worker_id":"w","url":"http://h:1/","streams":0,"max_streams":1,"updated_at":1}'
    decoded = Advert.decode(raw)
    assert decoded is not None
    assert decoded.url == "http://h:1"


def test_peer_with_most_room_wins() -> None:
    peers = [advert("a", 3), advert("b", 1), advert("c", 2)]
    chosen = pick_peer(peers, "self", NOW, stale_s=3)
    assert chosen is not None
    assert chosen.worker_id == "b"


def test_ties_go_to_the_lowest_id_so_every_worker_agrees() -> None:
    peers = [advert("z", 1), advert("m", 1), advert("q", 1)]
    chosen = pick_peer(peers, "self", NOW, stale_s=3)
    assert chosen is not None
    assert chosen.worker_id == "m"


def test_self_full_and_stale_peers_are_never_chosen() -> None:
    peers = [advert("self", 0), advert("full", 4), advert("stale", 0, age_s=10)]
    assert pick_peer(peers, "self", NOW, stale_s=3) is None
    assert pick_peer([], "self", NOW, stale_s=3) is None


def test_room_never_negative() -> None:
    assert advert("over", 6, max_streams=4).room == 0


def test_redirect_location_and_key_names() -> None:
    assert redirect_location("http://h:8080/", "cam1") == "http://h:8080/whip/cam1"
    keys = Keys("ss")
    assert keys.index == "ss:_workers"
    assert keys.advert("w1") == "ss:_workers:w1"
    assert keys.streams("w1") == "ss:_workers:w1:streams"
    assert keys.claim("cam1") == "ss:_claims:cam1"

"""Reading readiness from Edge and trunk fields."""

from wfm_publish.genesys import Edge, Trunk
from wfm_publish.readiness import judge, observe_edge, observe_trunk

NOW = 1_700_000_000.0


def edge(**fields: object) -> Edge:
    base = {
        "id": "e1",
        "statusCode": "ACTIVE",
        "onlineStatus": "ONLINE",
        "softwareStatus": {"status": "SUCCEEDED"},
        "callDrainingState": "NONE",
    }
    return Edge.model_validate(base | fields)


def trunk(**fields: object) -> Trunk:
    base = {"id": "t1", "state": "active", "inService": True, "connectedStatus": {"connected": True}}
    return Trunk.model_validate(base | fields)


def test_a_settled_edge_and_trunk_are_ready() -> None:
    assert judge([observe_edge(edge()), observe_trunk(trunk())], NOW, 30).ready


def test_each_unsettled_edge_field_blocks() -> None:
    for fields in (
        {"statusCode": "INITIALIZING"},
        {"onlineStatus": "OFFLINE"},
        {"softwareStatus": {"status": "IN_PROGRESS"}},
        {"callDrainingState": "WAIT"},
    ):
        seen = judge([observe_edge(edge(**fields))], NOW, 30)
        assert not seen.ready, fields
        assert seen.settles_at is None


def test_a_disconnected_or_inactive_trunk_blocks() -> None:
    assert not judge([observe_trunk(trunk(connectedStatus={"connected": False}))], NOW, 30).ready
    assert not judge([observe_trunk(trunk(state="inactive"))], NOW, 30).ready


def test_a_change_inside_the_settle_window_blocks_until_the_window_closes() -> None:
    seen = judge([observe_trunk(trunk(dateModified="2023-11-14T22:13:10Z"))], NOW, 30)
    assert not seen.ready
    assert seen.settles_at == NOW - 10 + 30
    assert "settle window" in seen.blockers[0]
    assert judge([observe_trunk(trunk(dateModified="2023-11-14T22:12:00Z"))], NOW, 30).ready

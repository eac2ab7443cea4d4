"""harness.expectations.constants: corosync's constants read from a node, PVE's HA
constants and how they scale."""

from __future__ import annotations

import pytest

from harness.errors import NodeUnreachable, PvechaosError
from harness.expectations import (
    ClusterConstants,
    ConstantsUnavailable,
    parse_cmap_value,
    read_constants,
)
from harness.timescale import REAL_TIME, Timescale
from tests.twins import Call, FakeNode

# Recorded lines of `corosync-cmapctl` on a 3-node corosync 3 cluster with default totem
# settings (a public write-up's full listing; the format is print_key in corosync's
# tools/corosync-cmapctl.c: "<key> (<type>) = <value>"). That listing has no
# runtime.config.totem.token_coefficient key.
RECORDED_TOKEN = "runtime.config.totem.token (u32) = 3650\n"
RECORDED_CONSENSUS = "runtime.config.totem.consensus (u32) = 4380\n"
# What corosync-cmapctl prints on stderr for a key it does not have (same source file).
NOT_EXIST = "Can't get key {key}. Error CS_ERR_NOT_EXIST\n"


# -- parsing ---------------------------------------------------------------------------
def test_parses_a_recorded_cmapctl_line():
    assert parse_cmap_value(RECORDED_TOKEN, "runtime.config.totem.token") == 3650
    assert parse_cmap_value(RECORDED_CONSENSUS, "runtime.config.totem.consensus") == 4380


def test_picks_the_asked_key_among_several_and_not_a_prefix_of_it():
    text = ("runtime.config.totem.token_retransmit (u32) = 869\n"
            "runtime.config.totem.token_warning (u32) = 75\n" + RECORDED_TOKEN)
    assert parse_cmap_value(text, "runtime.config.totem.token") == 3650


def test_a_missing_key_is_none():
    assert parse_cmap_value("", "totem.token_coefficient") is None
    assert parse_cmap_value(RECORDED_TOKEN, "totem.token_coefficient") is None


def test_a_configured_value_stored_as_a_string_is_read_too():
    assert parse_cmap_value("totem.token_coefficient (str) = 125\n",
                            "totem.token_coefficient") == 125


def test_a_non_integer_value_is_an_error():
    with pytest.raises(ConstantsUnavailable, match="not an integer"):
        parse_cmap_value("runtime.config.totem.token (str) = fast\n",
                         "runtime.config.totem.token")


# -- reading from a node ---------------------------------------------------------------
def cmapctl(values: dict[str, int | str]):
    """A node's `corosync-cmapctl -g KEY`, answered from a dict (corosync 3's output)."""
    def answer(call: Call) -> tuple[int, str, str]:
        assert call.argv[:2] == ("corosync-cmapctl", "-g") and len(call.argv) == 3
        key = call.argv[2]
        if key not in values:
            return 1, "", NOT_EXIST.format(key=key)
        value = values[key]
        kind = "str" if isinstance(value, str) else "u32"
        return 0, f"{key} ({kind}) = {value}\n", ""
    return answer


def cmap_node(values: dict[str, int | str]) -> FakeNode:
    return FakeNode("node1", cmapctl(values))


RUNTIME = {"runtime.config.totem.token": 3650, "runtime.config.totem.consensus": 4380}


def test_reads_the_runtime_values_and_the_default_coefficient():
    node = cmap_node(RUNTIME)
    c = read_constants(node, Timescale(0.1), 3)
    assert (c.nodes, c.token_ms, c.consensus_ms, c.token_coefficient_ms, c.timescale) == (
        3, 3650, 4380, 650, Timescale(0.1))
    asked = [call.argv[2] for call in node.calls]
    assert asked == ["runtime.config.totem.token", "runtime.config.totem.consensus",
                     "runtime.config.totem.token_coefficient", "totem.token_coefficient",
                     "runtime.config.totem.hold"]
    assert c.hold_ms is None and c.token_hold == 0.685  # corosync's default for 3650 ms


def test_the_token_hold_is_read_from_the_running_corosync():
    # recorded from the embedded lab's corosync 3 (3 nodes, stock totem settings)
    node = cmap_node({**RUNTIME, "runtime.config.totem.hold": 685})
    c = read_constants(node, REAL_TIME, 3)
    assert (c.hold_ms, c.token_hold) == (685, 0.685)
    configured = cmap_node({**RUNTIME, "runtime.config.totem.hold": 180})  # totem { hold }
    assert read_constants(configured, REAL_TIME, 3).token_hold == 0.18


def test_the_configured_coefficient_is_used_when_runtime_has_none():
    node = cmap_node({"runtime.config.totem.token": 3125,
                     "runtime.config.totem.consensus": 3750, "totem.token_coefficient": 125})
    assert read_constants(node, REAL_TIME, 3).token_coefficient_ms == 125


def test_the_runtime_coefficient_wins_over_the_configured_one():
    node = cmap_node({**RUNTIME, "runtime.config.totem.token_coefficient": 650,
                     "totem.token_coefficient": "125"})
    assert read_constants(node, REAL_TIME, 3).token_coefficient_ms == 650


def test_a_missing_runtime_token_is_a_clear_error_with_a_hint():
    node = cmap_node({"runtime.config.totem.consensus": 4380})
    with pytest.raises(ConstantsUnavailable) as info:
        read_constants(node, REAL_TIME, 3)
    assert isinstance(info.value, PvechaosError)
    assert "runtime.config.totem.token" in str(info.value)
    assert info.value.hint and "corosync" in info.value.hint


def test_corosync_not_running_is_a_clear_error():
    down = (1, "", "Failed to initialize the cmap API. Error CS_ERR_LIBRARY\n")
    with pytest.raises(ConstantsUnavailable, match="CS_ERR_LIBRARY") as info:
        read_constants(FakeNode("node1", [down]), REAL_TIME, 3)
    assert "systemctl status corosync" in (info.value.hint or "")


def test_an_unreachable_node_is_reported_as_constants_unavailable():
    gone = NodeUnreachable("node1", "10.0.0.1", "connection refused")
    with pytest.raises(ConstantsUnavailable, match="unreachable") as info:
        read_constants(FakeNode("node1", [gone]), REAL_TIME, 3)
    assert info.value.__cause__ is gone


# -- constants -------------------------------------------------------------------------
@pytest.mark.parametrize(("nodes", "coefficient", "token", "consensus"), [
    (3, 650, 3650, 4380), (3, 125, 3125, 3750), (5, 650, 4950, 5940), (2, 650, 3000, 3600)])
def test_stock_constants_follow_corosyncs_formula(nodes, coefficient, token, consensus):
    c = ClusterConstants.stock(nodes, REAL_TIME, coefficient)
    assert (c.token_ms, c.consensus_ms) == (token, consensus)


def test_ha_constants_scale_and_corosync_ones_do_not():
    one, tenth = ClusterConstants.stock(3, REAL_TIME), ClusterConstants.stock(3, Timescale(0.1))
    assert tenth.lock_lifetime == pytest.approx(12.0)
    assert tenth.crm_loop == pytest.approx(1.0)
    assert tenth.watchdog == pytest.approx(6.0)
    assert tenth.detection == one.detection == pytest.approx(8.03)
    # 60 * 0.1 / (10 * 0.1) is 6.000000000000001 in floats: still six rounds
    assert tenth.fence_countdown == pytest.approx(6.0)


def test_the_constants_take_the_runs_timescale_as_it_is():
    # (the timescale is validated where it is made: tests/unit/test_timescale.py)
    tenth = Timescale(0.1)
    assert ClusterConstants.stock(3, tenth).timescale is tenth

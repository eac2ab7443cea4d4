"""The preflight's checks (harness/preflight_checks.py) on recorded and edited answers, and
the table harness/preflight.py renders from them."""

from __future__ import annotations

import json

import pytest

from harness import preflight
from harness import preflight_checks as checks
from harness.errors import NodeUnreachable
from harness.preflight_checks import Check, ClockReading, Verdict
from harness.pve import LinkPeer, parse_cfgtool_status, parse_pvecm_status, parse_pveversion
from harness.pve.cmap import KnetLink, parse_knet_links
from harness.pve.storage import parse_pvesm_status, parse_storage_cfg

IDS = {"node1": 1, "node2": 2, "node3": 3}
NODES = tuple(IDS)


def test_node_count_ok_warn_and_fail():
    assert checks.node_count(NODES, list(NODES)).verdict == Verdict.OK
    two = checks.node_count(("node1", "node2"), ["node1", "node2"])
    assert two.verdict == Verdict.WARN and "QDevice" in two.fix
    many = [f"n{i}" for i in range(33)]
    big = checks.node_count(many, many)
    assert big.verdict == Verdict.FAIL and "above PVE's 32" in big.found
    stray = checks.node_count(("node1", "node2", "node3", "node4"), list(NODES))
    assert stray.verdict == Verdict.FAIL and "the lab also lists node4" in stray.found
    partial = checks.node_count(("node1", "node2"), list(NODES))
    assert partial.verdict == Verdict.WARN
    assert "the lab does not list node3, so no check reaches it" in partial.found


def test_versions_name_each_version_and_its_nodes(load):
    v8 = parse_pveversion(load("pve8/pveversion.txt"))
    v9 = parse_pveversion(load("pve9/pveversion_9.0.3.txt"))
    assert checks.versions({"node1": v8, "node2": v8, "node3": v8}).verdict == Verdict.OK
    mixed = checks.versions({"node1": v8, "node2": v8, "node3": v9})
    assert mixed.verdict == Verdict.FAIL
    assert mixed.found == f"mixed: {v8.manager} on node1, node2; 9.0.3 on node3"


def test_an_unreachable_node_fails_the_check_naming_it(load):
    v8 = parse_pveversion(load("pve8/pveversion.txt"))
    down = NodeUnreachable("node3", "198.18.70.13", "timed out")
    check = checks.versions({"node1": v8, "node2": v8, "node3": down})
    assert check.verdict == Verdict.FAIL
    assert check.found.startswith("no answer: node3: node3 (198.18.70.13) is unreachable")


@pytest.mark.parametrize("version", ["pve8", "pve9"])
def test_quorum(load, version):
    whole = parse_pvecm_status(load(f"{version}/pvecm_status_quorate.txt"))
    ok = checks.quorum(dict.fromkeys(NODES, whole), 3)
    assert ok.verdict == Verdict.OK and "votes 3/3" in ok.found
    two = parse_pvecm_status(load(f"{version}/pvecm_status_two_of_three.txt"))
    lost = checks.quorum({"node1": two, "node2": two, "node3": whole}, 3)
    assert lost.verdict == Verdict.FAIL
    assert "node1 sees 2 of 3 members" in lost.found and "node3" not in lost.found


def _views(load) -> dict[str, tuple[LinkPeer, ...]]:
    """Each node's `corosync-cfgtool -s`, from node1's recording with its ids swapped."""
    one = parse_cfgtool_status(load("pve8/corosync_cfgtool_all_connected.txt"))
    views = {}
    for node, me in IDS.items():
        views[node] = tuple(LinkPeer(p.link, p.nodeid, "localhost" if p.nodeid == me
                                     else "connected") for p in one)
    return views


def _drop(views, node: str, peer: int, link: int = 0):
    views[node] = tuple(LinkPeer(p.link, p.nodeid, "disconnected")
                        if (p.nodeid, p.link) == (peer, link) else p for p in views[node])


def test_links_and_pairs_on_a_whole_cluster(load):
    views = _views(load)
    assert checks.links(views, IDS).verdict == Verdict.OK
    pairs = checks.udp_pairs(views, IDS)
    assert pairs.verdict == Verdict.OK and pairs.found.startswith("all 3 pairs")


def test_a_cut_pair_fails_both_and_names_only_that_pair(load):
    views = _views(load)
    _drop(views, "node1", 3)
    _drop(views, "node3", 1)
    pairs = checks.udp_pairs(views, IDS)
    assert pairs.verdict == Verdict.FAIL
    assert pairs.found == "no knet link: node1<->node3 (node1 sees node3 down, " \
                          "node3 sees node1 down)"
    links = checks.links(views, IDS)
    assert links.verdict == Verdict.FAIL
    assert links.found == "node1->node3 link 0 disconnected; node3->node1 link 0 disconnected"


def test_a_pair_down_one_way_still_fails_the_pair(load):
    views = _views(load)
    _drop(views, "node2", 1)
    assert "node2 sees node1 down" in checks.udp_pairs(views, IDS).found


def test_a_lost_second_link_only_warns(load):
    views = _views(load)
    for node in IDS:  # a second link, up everywhere but node1 -> node2
        views[node] = views[node] + tuple(LinkPeer(1, p.nodeid, p.state) for p in views[node])
    _drop(views, "node1", 2, link=1)
    links = checks.links(views, IDS)
    assert links.verdict == Verdict.WARN and links.found == "node1->node2 link 1 disconnected"
    assert checks.udp_pairs(views, IDS).verdict == Verdict.OK


def _knet(load, **latency_us: int) -> dict[str, tuple[KnetLink, ...]]:
    recorded = parse_knet_links(load("pve8/corosync_cmapctl_stats_knet.txt"))
    out = {}
    for node in IDS:
        out[node] = tuple(
            KnetLink(k.nodeid, k.link, k.connected,
                     latency_us.get(f"{node}_{k.nodeid}", k.latency_ave_us), k.latency_samples)
            for k in recorded)
    return out


def test_latency_on_the_recorded_lab_is_fine(load):
    check = checks.latency(_knet(load), IDS)
    assert check.verdict == Verdict.OK and "0.35 ms" in check.found


@pytest.mark.parametrize(("us", "verdict", "text"), [
    (2000, Verdict.OK, "under 2 ms"), (2001, Verdict.WARN, "above 2 ms"),
    (5000, Verdict.WARN, "above 2 ms"), (5001, Verdict.FAIL, "above 5 ms")])
def test_latency_thresholds(load, us, verdict, text):
    check = checks.latency(_knet(load, node1_2=us), IDS)
    assert check.verdict == verdict and text in check.found
    assert "(node1<->node2)" in check.found


def test_the_local_entry_and_unsampled_links_do_not_count(load):
    knet = {n: tuple(KnetLink(k.nodeid, k.link, k.connected, 99999, 0) for k in links)
            for n, links in _knet(load).items()}
    assert checks.latency(knet, IDS).verdict == Verdict.WARN  # no samples yet


def test_clocks_spread_within_error_bars_passes():
    readings = {"node1": ClockReading(0.08, 0.1), "node2": ClockReading(-0.05, 0.1),
                "node3": ClockReading(0.0, 0.01)}
    check = checks.clocks(readings)
    assert check.verdict == Verdict.OK and "spread at least 0.000 s" in check.found


@pytest.mark.parametrize(("offset", "verdict"), [(0.5, Verdict.WARN), (5.0, Verdict.FAIL),
                                                 (-3.0, Verdict.FAIL)])
def test_a_clock_off_by_more_than_its_error_bar(offset, verdict):
    readings = {"node1": ClockReading(0.0, 0.01), "node2": ClockReading(0.0, 0.01),
                "node3": ClockReading(offset, 0.05)}
    check = checks.clocks(readings)
    assert check.verdict == verdict
    assert f"node3 {offset:+.3f}±0.050" in check.found


def test_the_harness_clock_being_off_does_not_matter():
    readings = {n: ClockReading(3600.0 + i * 0.001, 0.01) for i, n in enumerate(NODES)}
    assert checks.clocks(readings).verdict == Verdict.OK


def test_watchdog():
    ok = checks.watchdog({"node1": ("active", ""), "node2": ("active", "ipmi_watchdog"),
                          "node3": ("active", "")})
    assert ok.verdict == Verdict.OK and "device ipmi_watchdog, softdog" in ok.found
    off = checks.watchdog({"node1": ("active", ""), "node2": ("inactive", ""),
                           "node3": ("failed", "")})
    assert off.verdict == Verdict.FAIL
    assert off.found == "watchdog-mux node2 inactive, node3 failed"


def test_shared_storage(load):
    cfg = parse_storage_cfg(load("pve8/storage_cfg_nfs.txt"))
    status = parse_pvesm_status(load("pve8/pvesm_status_nfs.txt"))
    ok = checks.shared_storage(cfg, dict.fromkeys(NODES, status))
    assert ok.verdict == Verdict.OK and ok.found == "shared (nfs) active on every node"
    down = checks.shared_storage(cfg, {"node1": status, "node2": {"shared": "inactive"},
                                       "node3": {}})
    assert down.verdict == Verdict.FAIL
    assert down.found == "shared inactive on node2; shared not listed on node3"
    none = checks.shared_storage(parse_storage_cfg("dir: local\n\tpath /var/lib/vz\n"),
                                 dict.fromkeys(NODES, status))
    assert none.verdict == Verdict.WARN


def test_a_storage_limited_to_some_nodes_is_not_asked_of_the_others(load):
    cfg = parse_storage_cfg("nfs: s\n\tserver 1.2.3.4\n\texport /e\n\tnodes node1\n")
    check = checks.shared_storage(cfg, {"node1": {"s": "active"}, "node2": {}})
    assert check.verdict == Verdict.OK


def test_ha_storage(load):
    cfg = parse_storage_cfg(load("pve8/storage_cfg_nfs.txt"))
    ct = load("pve8/lxc_conf_shared.txt")
    assert checks.ha_storage((), {}, cfg).found == "no HA resources configured"
    ok = checks.ha_storage((("ct", 100),), {"ct:100": ct}, cfg)
    assert ok.verdict == Verdict.OK
    local = ct.replace("rootfs: shared:", "rootfs: local:") + "mp0: /srv,mp=/srv\n"
    bad = checks.ha_storage((("ct", 100), ("vm", 101)),
                            {"ct:100": local, "vm:101": None}, cfg)
    assert bad.verdict == Verdict.FAIL
    assert bad.found == ("ct:100 rootfs on local storage local (dir); ct:100 mp0 is the "
                         "path /srv; vm:101: no guest config in /etc/pve/nodes/*")


def test_render_one_line_per_check_and_a_total():
    results = [Check("quorum", Verdict.OK, "quorate", "never shown"),
               Check("latency", Verdict.FAIL, "worst 9 ms", "a dedicated NIC")]
    table = preflight.render(results).splitlines()
    assert table[1] == "quorum   OK       quorate"
    assert table[2] == "latency  FAIL     worst 9 ms  -> fix: a dedicated NIC"
    assert table[-1] == "preflight: 1 ok, 0 warn, 1 fail"
    assert json.loads(preflight.to_json(results))[1] == {
        "name": "latency", "verdict": "fail", "found": "worst 9 ms",
        "fix": "a dedicated NIC"}
    assert preflight.failed(results) == results[1:]

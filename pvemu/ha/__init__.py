"""The PVE HA stack of an embedded node: pve-ha-crm, pve-ha-lrm and watchdog-mux.

Built as PVE builds it (pve-model.md §1-§12): the CRM and LRM are state machines that
touch the world only through an environment (`env.HaEnv`: clock, cluster store, locks,
quorum, watchdog, guests). The node's daemons run them against /etc/pve; the unit tests
run them against `sim`, a whole cluster in fake time.
"""

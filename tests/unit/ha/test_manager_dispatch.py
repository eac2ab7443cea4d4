"""The master's explicit table of service-state handlers (Manager.pm's manage())."""

import pytest

from pvemu.ha.manager import SERVICE_STATES, Manager
from pvemu.ha.sim import SimCluster


class StatusEnv:
    """What Manager() reads when it is made: a manager_status with one service."""

    nodename = "node1"
    flavour = 8
    bugs: frozenset[str] = frozenset()

    def __init__(self, state: str) -> None:
        self.state = state

    def read_manager_status(self) -> dict:
        return {"service_status": {"vm:101": {"state": self.state, "node": "node1"}}}


def test_every_service_state_has_exactly_one_handler():
    handlers = Manager(StatusEnv("started")).state_handlers
    assert set(handlers) == set(SERVICE_STATES)


@pytest.mark.parametrize("state", ["migrate", "relocate", "request_start_balance"])
def test_moves_share_the_migrate_handler(state):
    manager = Manager(StatusEnv(state))
    assert manager.state_handlers[state] == manager.next_state_migrate



def test_an_unknown_state_is_an_error_the_master_logs_each_round():
    """Manager.pm dies on it; CRM.pm's eval around manage() logs that and carries on."""
    c = SimCluster(manager_status={"service_status": {
        "vm:101": {"state": "bogus", "node": "node1", "uid": "x"}}})
    c.run_until(300)
    errors = c.find(r"^got unexpected error - unknown service state 'bogus'$", daemon="crm")
    assert len(errors) > 1 and {e.node for e in errors} == {c.master()}

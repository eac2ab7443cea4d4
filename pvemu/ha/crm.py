"""pve-ha-crm: the cluster resource manager daemon (pve-model.md §3; CRM.pm).

States: startup -> wait_for_quorum, master, slave, lost_manager_lock. Only the holder of
`ha_manager_lock` is master and runs `Manager.manage()` every 10 s. The watchdog is
opened on the first lock acquisition, updated on each renewal and closed gracefully
when the master role ends, so losing quorum never resets a node because of its CRM.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from .env import Daemon, HaEnv, SleepUntil
from .manager import Manager

CRM_STATES = ("startup", "wait_for_quorum", "master", "slave", "lost_manager_lock")


def acquire_lock(env: HaEnv, get: Callable[[], bool]) -> Generator[float, None, bool]:
    """`get_protected_ha_*_lock`: at most 6 tries, 1 s apart, give up after > 5 s (§2)."""
    start = env.now()
    for attempt in range(1, env.timing.lock_tries + 1):
        if get():
            return True
        if attempt >= env.timing.lock_tries:
            break
        if env.now() - start > env.timing.s(5):
            break
        yield env.timing.lock_retry
    return False


class WatchdogHolder:
    """A daemon that opens its watchdog with its first lock and feeds it on every renewal
    (§7.6); `env` and `watchdog_open` are set by the daemon."""

    env: HaEnv
    watchdog_open: bool

    def take_lock(self, get: Callable[[], bool]) -> Generator[float, None, bool]:
        got = yield from acquire_lock(self.env, get)
        if got:
            if self.watchdog_open:
                self.env.watchdog_update()
            else:
                self.env.watchdog_open()
                self.watchdog_open = True
        return got

    def close_watchdog(self) -> None:
        """Graceful close (magic 'V')."""
        if self.watchdog_open:
            self.env.watchdog_close()
            self.watchdog_open = False


class Crm(WatchdogHolder):
    def __init__(self, env: HaEnv) -> None:
        self.env = env
        self.state = "startup"
        self.manager: Manager | None = None
        self.shutdown_requested = False
        self.watchdog_open = False
        self.cluster_state_ok = False
        self.idle_rounds = 0

    def request_shutdown(self) -> None:
        """SIGTERM: a master releases its lock voluntarily and everybody exits (§3)."""
        if not self.shutdown_requested:
            self.env.log("info", "received shutdown request")
        self.shutdown_requested = True

    # -- helpers -----------------------------------------------------------------
    def set_state(self, state: str) -> None:
        assert state in CRM_STATES, state
        if state == self.state:
            return
        self.env.log("info", f"status change {self.state} => {state}")
        if state == "master":
            self.manager = Manager(self.env)
            self.idle_rounds = 0
        elif self.state == "master":
            self.manager = None
        self.state = state

    def get_manager_lock(self) -> Generator[float, None, bool]:
        return (yield from self.take_lock(self.env.get_ha_manager_lock))

    def has_work(self, ms: dict) -> bool:
        """resources.cfg not empty, or something else needs a master (§3). Pending
        crm_commands are not checked: reading them would consume them (simplification)."""
        if self.env.read_service_config():
            return True
        if ms.get("service_status"):
            return True  # stale entries to clean up
        requests = ms.get("node_request") or {}
        for node, state in (ms.get("node_status") or {}).items():
            if state == "maintenance" and not (requests.get(node) or {}).get("maintenance"):
                return True
        return False

    def can_get_active(self, allow_no_service: bool = False) -> bool:
        env = self.env
        if not env.quorate() or not self.cluster_state_ok:
            return False
        try:
            ms = env.read_manager_status() or {}
        except Exception as err:  # noqa: BLE001 - PVE logs and carries on
            env.log("err", f"could not read manager status: {err}")
            return False
        me = env.nodename
        for sd in (ms.get("service_status") or {}).values():
            if sd.get("node") == me and sd.get("state") == "fence":
                return False  # a node being fenced cannot become master
        return allow_no_service or self.has_work(ms)

    # -- the daemon -----------------------------------------------------------------
    def run(self) -> Daemon:
        env = self.env
        self.set_state("wait_for_quorum")
        while True:
            self.cluster_state_ok = env.cluster_state_update()
            state = self.state
            # state changes first
            if state == "wait_for_quorum":
                if not self.shutdown_requested and self.can_get_active():
                    if (yield from self.get_manager_lock()):
                        self.set_state("master")
                    else:
                        self.set_state("slave")
            elif state == "slave":
                if not self.shutdown_requested:
                    if self.can_get_active():
                        if (yield from self.get_manager_lock()):
                            self.set_state("master")
                    else:
                        self.set_state("wait_for_quorum")
            elif state == "master":
                if not (yield from self.get_manager_lock()):
                    self.set_state("lost_manager_lock")
                elif not self.shutdown_requested:
                    self._check_idle()

            # then the work of the state
            state = self.state
            if state == "wait_for_quorum":
                if self.shutdown_requested:
                    return
                yield env.timing.crm_wait_for_quorum
            elif state == "slave":
                if self.shutdown_requested:
                    return
                yield 0.0  # the lock tries above took ~5 s
            elif state == "lost_manager_lock":
                self.close_watchdog()
                if self.shutdown_requested:
                    return
                self.set_state("wait_for_quorum")
                yield 0.0
            elif state == "master":
                start = env.now()
                if self.shutdown_requested:
                    self.close_watchdog()
                    env.release_ha_manager_lock()  # voluntary: a slave takes over at once
                    env.log("info", "master released manager lock for shutdown")
                    return
                if not self.cluster_state_ok:
                    env.log("notice", "temporary inconsistent cluster state (cfs restart?), "
                            "skip round")
                else:
                    try:
                        assert self.manager is not None
                        self.manager.manage()
                    except Exception as err:  # noqa: BLE001 - PVE's eval {} around manage
                        env.log("err", f"got unexpected error - {err}")
                yield SleepUntil(start + env.timing.crm_loop, env.now())

    def _check_idle(self) -> None:
        """Give up the master role after 90 rounds without services (§3)."""
        ms = self.env.read_manager_status() or {}
        if self.has_work(ms):
            self.idle_rounds = 0
            return
        self.idle_rounds += 1
        if self.idle_rounds > self.env.timing.crm_idle_rounds:
            self.env.log("info", f"cluster had no service configured for "
                         f"{self.env.timing.crm_idle_rounds} rounds, going idle.")
            self.env.release_ha_manager_lock()
            self.close_watchdog()
            self.set_state("wait_for_quorum")

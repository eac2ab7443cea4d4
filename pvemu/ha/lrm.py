"""pve-ha-lrm: the local resource manager daemon (pve-model.md §7, §8; PVE::HA::LRM).

States (lrm_status.state): startup, wait_for_agent_lock, active, lost_agent_lock,
maintenance. Modes (lrm_status.mode): active, restart, shutdown, maintenance. The LRM
holds `ha_agent_<node>_lock` only while it has active services; it runs the master's
commands once per uid and reports the result keyed by uid.

Mirrors PVE::HA::LRM (src/PVE/HA/LRM.pm) one to one: its states, `work()`, the shutdown
policies, the worker queue and the restart policy; that is why it is longer than the
house's 400 lines. LRM.pm's `exec_resource_agent`, the body of one worker, lives in
resource_agent.py.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from .crm import WatchdogHolder
from .env import (
    ERROR,
    ETRY_AGAIN,
    SUCCESS,
    Daemon,
    Guests,
    HaEnv,
    SleepUntil,
)

LRM_STATES = ("startup", "wait_for_agent_lock", "active", "lost_agent_lock", "maintenance")
NOT_ACTIVE = ("stopped", "freeze", "error", "request_start")  # §7.4
NOT_EXECUTED = ("recovery", "freeze", "request_start")  # §7.5
SHUTDOWN_POLICIES = ("conditional", "freeze", "failover", "migrate")


@dataclass
class Job:
    sid: str
    uid: str | None  # None: a stop job queued by a node shutdown
    command: str
    params: dict = field(default_factory=dict)
    key: str | None = None  # the worker id once started


class Lrm(WatchdogHolder):
    def __init__(self, env: HaEnv, guests: Guests) -> None:
        self.env = env
        self.guests = guests
        self.state = "startup"
        self.mode = "active"
        self.state_change_time = env.now()
        self.results: dict[str, dict] = {}
        self.restart_tries: dict[str, int] = {}
        self.jobs: dict[str, Job] = {}  # sid -> queued or running job
        self.followups: dict[str, Job] = {}  # sid -> stop job to run after the current one
        self.service_status: dict[str, dict] = {}
        self.node_status = "unknown"
        self.node_request: dict = {}
        self.shutdown_request: float | None = None
        self.shutdown_errors = 0
        self.watchdog_open = False
        self.active_idle_rounds = 0
        self.wrote_status = False
        self.cluster_state_ok = False

    # -- status --------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        assert state in LRM_STATES, state
        if state == self.state:
            return
        self.env.log("info", f"status change {self.state} => {state}")
        self.state = state
        self.state_change_time = self.env.now()

    def update_lrm_status(self) -> bool:
        if not self.env.quorate():
            return False
        return self.env.write_lrm_status({
            "state": self.state, "mode": self.mode, "results": dict(self.results),
            "timestamp": self.env.now()})

    def update_service_status(self) -> bool:
        try:
            ms = self.env.read_manager_status() or {}
        except Exception as err:  # noqa: BLE001
            self.env.log("err", f"updating service status from manager failed: {err}")
            return False
        me = self.env.nodename
        self.service_status = ms.get("service_status") or {}
        self.node_status = (ms.get("node_status") or {}).get(me, "unknown")
        self.node_request = (ms.get("node_request") or {}).get(me) or {}
        if self.shutdown_request is None:
            if self.node_request.get("maintenance"):
                self.mode = "maintenance"
            elif self.mode == "maintenance":
                self.mode = "active"
        return True

    def local_services(self) -> dict[str, dict]:
        me = self.env.nodename
        return {sid: sd for sid, sd in self.service_status.items() if sd.get("node") == me}

    def active_service_count(self) -> int:
        """§7.4 (PVE 8: only services whose node is this node)."""
        return sum(1 for sd in self.local_services().values()
                   if sd.get("state") and sd["state"] not in NOT_ACTIVE)

    def fence_request(self) -> bool:
        return self.node_status == "fence" or any(
            sd.get("state") == "fence" for sd in self.local_services().values())

    # -- watchdog and lock -----------------------------------------------------------
    def get_agent_lock(self) -> Generator[float, None, bool]:
        return (yield from self.take_lock(self.env.get_ha_agent_lock))

    # -- shutdown (§8.1) --------------------------------------------------------------
    def request_shutdown(self, reboot: bool | None = None) -> None:
        """SIGTERM. env.is_node_shutdown() tells a system shutdown from a plain daemon
        restart; `reboot`, when given, overrides its reboot flag."""
        if self.shutdown_request is not None:
            return
        env = self.env
        shutdown, is_reboot = env.is_node_shutdown()
        if reboot is not None:
            is_reboot = reboot
        policy = ((env.read_datacenter() or {}).get("ha") or {}).get(
            "shutdown_policy", "conditional")
        if shutdown:
            env.log("info", f"got shutdown request with shutdown policy '{policy}'")
        freeze_all = maintenance = False
        if policy == "conditional":
            freeze_all = is_reboot
        elif policy == "freeze":
            freeze_all = True
        elif policy == "failover":
            freeze_all = False
        elif policy == "migrate":
            maintenance = True
        else:
            env.log("err", f"unknown shutdown policy '{policy}', fall back to conditional")
            freeze_all = is_reboot
        manual = bool(self.node_request.get("maintenance"))
        if shutdown and not maintenance:
            # always stop every local service on a node shutdown (reboot or poweroff)
            for sid in sorted(self.local_services()):
                self.queue_job(sid, None, "request_stop", {})
        kind = "reboot" if is_reboot else "shutdown"
        if shutdown:
            if manual:
                env.log("info", f"{kind} LRM, ignore {policy} policy as manual maintenance "
                        "mode is enabled")
            elif maintenance:
                env.log("info", f"{kind} LRM, doing maintenance, removing this node from "
                        "active list")
                self.mode = "maintenance"
            elif freeze_all:
                env.log("info", f"{kind} LRM, stop and freeze all services")
                self.mode = "restart"
            else:
                env.log("info", "shutdown LRM, stop all services")
                self.mode = "shutdown"
        elif manual:
            env.log("info", "Restarting LRM in maintenance mode may be delayed until all "
                    "services are moved")
        else:
            env.log("info", "restart LRM, freeze all services")
            self.mode = "restart"
        self.shutdown_request = env.now()
        if not self.update_lrm_status():
            env.log("err", "unable to update lrm status file - not quorate?")

    # -- workers (§7.5) -----------------------------------------------------------------
    def queue_job(self, sid: str, uid: str | None, command: str, params: dict) -> None:
        if command != "stopped" and uid is not None and uid in self.results:
            return  # never run the same command twice
        job = self.jobs.get(sid)
        if job is not None:
            if job.key is not None:
                if uid is None:
                    # PVE drops a shutdown stop job while a worker for the sid runs; we
                    # keep it to run next so a node shutdown never leaves a guest running
                    self.followups[sid] = Job(sid, uid, command, params)
                return  # already running
            del self.jobs[sid]
        self.jobs[sid] = Job(sid, uid, command, params)

    def collect_workers(self) -> None:
        finished = self.env.finished_workers()
        for sid, job in list(self.jobs.items()):
            if job.key is None or job.key not in finished:
                continue
            del self.jobs[sid]
            if sid in self.followups:
                self.jobs[sid] = self.followups.pop(sid)
            code = finished[job.key]
            if job.uid is None:
                if code != SUCCESS:
                    self.shutdown_errors += 1
            else:
                self.resource_command_finished(job, code)

    def run_workers(self) -> Generator[float, None, int]:
        """Start queued jobs (at most max_workers at once) and wait for them, within the
        8 s budget. Returns how many jobs are left."""
        env = self.env
        start = env.now()
        max_workers = max(1, env.max_workers())
        while env.now() - start < env.timing.worker_budget:
            self.collect_workers()
            running = sum(1 for j in self.jobs.values() if j.key is not None)
            for sid in sorted(self.jobs):
                job = self.jobs[sid]
                if job.key is not None:
                    continue
                if running >= max_workers:
                    break
                job.key = job.uid if job.uid is not None else f"stop:{sid}"
                env.start_worker(job.key, sid, job.command, dict(job.params))
                running += 1
            if not running:
                break
            yield env.timing.s(1)
        return len(self.jobs)

    def resource_command_finished(self, job: Job, code: int) -> None:
        code = self.handle_service_exitcode(job.sid, job.command, code)
        if code == ETRY_AGAIN:
            return  # tell nobody, retry next round
        assert job.uid is not None
        self.results[job.uid] = {"sid": job.sid, "state": job.command, "exit_code": code}
        valid = {sd.get("uid") for sd in self.service_status.values()}
        self.results = {uid: r for uid, r in self.results.items() if uid in valid}

    def handle_service_exitcode(self, sid: str, command: str, code: int) -> int:
        """The restart policy (§7.8): max_restart local retries, one per LRM round."""
        if command != "started":
            return code
        if code == SUCCESS:
            self.restart_tries[sid] = 0
            return code
        if code != ERROR:
            return code
        cd = self.env.read_service_config().get(sid) or {}
        max_restart = int(cd.get("max_restart", 0))
        tries = self.restart_tries.get(sid, 0)
        if tries >= max_restart:
            self.env.log("err", f"unable to start service {sid} on local node after {tries} "
                         "retries")
            self.restart_tries[sid] = 0
            return ERROR
        self.restart_tries[sid] = tries + 1
        self.env.log("warn", f"restart policy: retry number {tries + 1} for service '{sid}'")
        return ETRY_AGAIN

    def manage_resources(self) -> Generator[float, None, int]:
        ss = self.service_status
        for sid in list(self.restart_tries):
            if sid not in ss:
                del self.restart_tries[sid]
        for sid, sd in sorted(self.local_services().items()):
            state = sd.get("state")
            if not sd.get("uid") or not state or state in NOT_EXECUTED:
                continue
            params = {k: sd[k] for k in ("target", "timeout") if k in sd}
            self.queue_job(sid, sd["uid"], state, params)
        return (yield from self.run_workers())

    # -- the daemon -----------------------------------------------------------------------
    def run(self) -> Daemon:
        self.set_state("wait_for_agent_lock")
        while True:
            keep_going = yield from self.step()
            if not keep_going:
                self.env.log("info", "LRM exits")
                return

    def step(self) -> Generator[float, None, bool]:
        """One iteration of LRM.pm `work()`: state changes first, then the work."""
        env = self.env
        self.cluster_state_ok = env.cluster_state_update()
        if not self.wrote_status:
            if self.update_lrm_status():
                self.wrote_status = True
            else:
                if self.shutdown_request is not None:
                    return False
                yield env.timing.lrm_wait
                return True
        status_ok = self.update_service_status()
        fence = self.fence_request()

        state = self.state
        if state == "wait_for_agent_lock":
            if not fence and self.active_service_count() and env.quorate() \
                    and self.shutdown_request is None:
                if (yield from self.get_agent_lock()):
                    self.set_state("active")
        elif state == "lost_agent_lock":
            if not fence and env.quorate():
                if (yield from self.get_agent_lock()):
                    self.set_state("active")
        elif state == "active":
            if fence:
                env.log("err", "node need to be fenced - releasing agent_lock")
                self.set_state("lost_agent_lock")
            elif not (yield from self.get_agent_lock()):
                self.set_state("lost_agent_lock")
            elif self.mode == "maintenance":
                self.set_state("maintenance")
            else:
                yield from self._check_idle()
        elif state == "maintenance":
            if fence:
                env.log("err", "node need to be fenced during maintenance mode - releasing "
                        "agent_lock")
                self.set_state("lost_agent_lock")
            elif self.active_service_count() or self.jobs:
                # keep lock and watchdog until every service left the node
                if not (yield from self.get_agent_lock()):
                    self.set_state("lost_agent_lock")
            elif self.mode != "maintenance":
                if (yield from self.get_agent_lock()):
                    self.set_state("active")
                else:
                    self.set_state("lost_agent_lock")

        state = self.state
        if state == "wait_for_agent_lock":
            if self.shutdown_request is not None:
                return False
            self.update_lrm_status()
            yield env.timing.lrm_wait
        elif state == "active":
            return (yield from self._work_active(status_ok))
        elif state == "lost_agent_lock":
            # the watchdog is NOT updated here: a reset is imminent
            if self.shutdown_request is not None:
                count = self.active_service_count()
                if count == 0:
                    self.close_watchdog()
                    return False
                env.log("err", "get shutdown request in state 'lost_agent_lock' - detected "
                        f"{count} running services")
                if self.mode == "restart" and \
                        env.now() - self.state_change_time > env.timing.lrm_restart_give_up:
                    env.log("err", "lost agent lock and restart request for over 90 seconds "
                            "- giving up!")
                    return False
            self.update_lrm_status()
            yield env.timing.lrm_wait
        elif state == "maintenance":
            return (yield from self._work_maintenance())
        return True

    def _check_idle(self) -> Generator[float, None, None]:
        """Go idle after 60 rounds with no service at all on this node (§7.3)."""
        if self.local_services():
            self.active_idle_rounds = 0
            return
        if (yield from self.run_workers()):
            return
        self.active_idle_rounds += 1
        if self.active_idle_rounds > self.env.timing.lrm_idle_rounds:
            self.env.log("info", f"node had no service configured for "
                         f"{self.env.timing.lrm_idle_rounds} rounds, going idle.")
            self.env.release_ha_agent_lock()
            self.close_watchdog()
            self.set_state("wait_for_agent_lock")
            self.active_idle_rounds = 0

    def _work_active(self, status_ok: bool) -> Generator[float, None, bool]:
        env = self.env
        start = env.now()
        exit_now = False
        if status_ok:
            if self.shutdown_request is not None:
                left = yield from self.run_workers()
                if self.mode == "restart":
                    if self.active_service_count() == 0 and left == 0:
                        self.close_watchdog()
                        env.release_ha_agent_lock()
                        exit_now = True
                elif left == 0:
                    if self.shutdown_errors == 0:
                        self.close_watchdog()
                        env.release_ha_agent_lock()
                    exit_now = True
            elif not self.cluster_state_ok:
                env.log("notice", "temporary inconsistent cluster state (cfs restart?), "
                        "skip round")
            else:
                yield from self.manage_resources()
        self.update_lrm_status()
        if exit_now:
            return False
        yield SleepUntil(start + env.timing.lrm_loop, env.now())
        return True

    def _work_maintenance(self) -> Generator[float, None, bool]:
        env = self.env
        start = env.now()
        exit_now = False
        left = yield from self.manage_resources()
        if self.active_service_count() == 0 and left == 0:
            # §7.3: empty -> close the watchdog, release the lock, exit if shutting down
            if self.watchdog_open:
                self.close_watchdog()
                env.release_ha_agent_lock()
            exit_now = self.shutdown_request is not None
        self.update_lrm_status()
        if exit_now:
            return False
        yield SleepUntil(start + env.timing.lrm_maintenance_loop, env.now())
        return True

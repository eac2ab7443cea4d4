"""The body of one LRM worker: what a resource agent does for one command (§7.5).

Mirrors PVE::HA::LRM's `exec_resource_agent` (src/PVE/HA/LRM.pm) together with the
PVE::HA::Resources::PVEVM / PVECT plugin calls it makes: exists, check_running, start,
shutdown and migrate (whose relocate path stops a running guest first), here through the
`Guests` seam. It is kept apart from lrm.py because it runs in a worker (a forked process
in PVE; a thread on an emulated node, a fake-time callback in the simulator), never in the
LRM loop. Besides LRM.pm's commands it answers PVE 9's `request_start_balance`.
"""

from __future__ import annotations

from .env import (
    EINVALID_PARAMETER,
    ERROR,
    EUNKNOWN_COMMAND,
    EUNKNOWN_SERVICE,
    EUNKNOWN_SERVICE_TYPE,
    EWRONG_NODE,
    IGNORED,
    SUCCESS,
    Guests,
    HaEnv,
)


def exec_resource_agent(env: HaEnv, guests: Guests, sid: str, command: str,
                        params: dict) -> int:
    """What PVEVM/PVECT do for one command (§7.5). Runs in an LRM worker."""
    kind = sid.partition(":")[0]
    if kind not in ("vm", "ct"):
        env.log("err", f"service type '{kind}' not implemented")
        return EUNKNOWN_SERVICE_TYPE
    if not guests.exists(sid):
        env.log("err", f"service '{sid}' does not exist")
        return EUNKNOWN_SERVICE
    if guests.config_node(sid) != env.nodename:
        env.log("err", f"service '{sid}' not on this node")
        return EWRONG_NODE
    running = guests.running(sid)

    if command == "started":
        if running:
            return SUCCESS
        env.log("info", f"starting service {sid}")
        guests.start(sid)
        if guests.running(sid):
            env.log("info", f"service status {sid} started")
            return SUCCESS
        env.log("warn", f"unable to start service {sid}")
        return ERROR

    if command in ("request_stop", "stopped"):
        if not running:
            return SUCCESS
        timeout = _stop_timeout(env, params)
        env.log("info", f"stopping service {sid} (timeout={timeout:g})")
        guests.shutdown(sid, timeout)
        if guests.running(sid):
            env.log("err", f"unable to stop service {sid} (still running)")
            return ERROR
        env.log("info", f"service status {sid} stopped")
        return SUCCESS

    if command in ("migrate", "relocate", "request_start_balance"):
        target = params.get("target")
        if not target:
            return EINVALID_PARAMETER
        if target == env.nodename:
            return SUCCESS
        if command == "request_start_balance" and running:
            return IGNORED
        online = command == "migrate"
        if command == "relocate" and running:
            env.log("info", f"stopping service {sid} (relocate)")
            guests.shutdown(sid, _stop_timeout(env, params))
            if guests.running(sid):
                env.log("err", f"unable to stop service {sid} (still running)")
                return ERROR
            env.log("info", f"service status {sid} stopped")
        env.log("info", f"service {sid} - start {command} to node '{target}'")
        guests.migrate(sid, target, online and guests.running(sid))
        if guests.config_node(sid) == target:
            env.log("info", f"service {sid} - end {command} to node '{target}'")
            return SUCCESS
        env.log("err", f"service {sid} not moved (migration error)")
        return ERROR

    if command == "error":
        env.log("err", f"service {sid} is in an error state and needs manual intervention. "
                "Look up 'ERROR RECOVERY' in the documentation.")
        return SUCCESS

    env.log("err", f"implement me (command '{command}')")
    return EUNKNOWN_COMMAND


def _stop_timeout(env: HaEnv, params: dict) -> float:
    """The CRM's `stop <timeout>` (0 = hard stop), else the 60 s default (vm and ct)."""
    timeout = params.get("timeout")
    if timeout is None:
        return env.timing.vm_shutdown_timeout
    return env.timing.s(float(timeout))

"""Power drivers for real BMCs, with injected fakes only: no subprocess, no network.

ipmitool outputs are the texts ipmitool 1.8.19 prints; Redfish bodies have the shapes a
Dell iDRAC 9 and an HPE iLO 5 answer with.
"""

from __future__ import annotations

import base64
import io
import json
import ssl
import subprocess
import urllib.error

import pytest

from harness.errors import ConfigError, LabError
from lab.inventory import power_drivers
from lab.inventory.power_drivers import IpmiPower, PowerDriver, RedfishPower

SECRET = "s3cr3t-Pa55"


# ---------------------------------------------------------------------------------- IPMI

class FakeRun:
    """Stands in for subprocess.run: records calls, answers or raises what it is given."""

    def __init__(self, stdout="", stderr="", returncode=0, raises=None):
        self.stdout, self.stderr, self.returncode, self.raises = stdout, stderr, returncode, raises
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        if self.raises is not None:
            raise self.raises
        return subprocess.CompletedProcess(argv, self.returncode, self.stdout, self.stderr)


def ipmi(run, **kwargs):
    return IpmiPower("node2", "10.0.0.22", "admin", SECRET, run=run, **kwargs)


def test_ipmi_status_argv_and_password_only_in_env():
    run = FakeRun("Chassis Power is on\n")
    assert ipmi(run).is_on() is True
    (argv, kwargs), = run.calls
    assert argv == ["ipmitool", "-I", "lanplus", "-H", "10.0.0.22", "-p", "623",
                    "-U", "admin", "-E", "chassis", "power", "status"]
    assert not any(SECRET in a for a in argv)
    assert kwargs["env"]["IPMI_PASSWORD"] == SECRET
    assert kwargs["timeout"] == 20
    assert kwargs["capture_output"] is True and kwargs["text"] is True


def test_ipmi_status_off():
    assert ipmi(FakeRun("Chassis Power is off\n")).is_on() is False


def test_ipmi_interface_port_and_timeout_are_passed():
    run = FakeRun("Chassis Power is off\n")
    IpmiPower("node3", "bmc3", "root", SECRET, interface="lan", port=6230, run=run,
              timeout_s=5).check()
    argv, kwargs = run.calls[0]
    assert argv[:8] == ["ipmitool", "-I", "lan", "-H", "bmc3", "-p", "6230", "-U"]
    assert kwargs["timeout"] == 5


@pytest.mark.parametrize(("method", "word"), [("power_off", "off"), ("power_on", "on"),
                                             ("shutdown", "soft"), ("reset", "reset")])
def test_ipmi_power_commands(method, word):
    run = FakeRun(f"Chassis Power Control: {'Down/Off' if word == 'off' else 'Up/On'}\n")
    getattr(ipmi(run), method)()
    (argv, kwargs), = run.calls
    assert argv[-4:] == ["-E", "chassis", "power", word]
    assert SECRET not in " ".join(argv)
    assert kwargs["env"]["IPMI_PASSWORD"] == SECRET


def test_ipmi_garbage_status_is_a_lab_error_quoting_it():
    with pytest.raises(LabError, match="node2.*Chassis Power is unknown") as e:
        ipmi(FakeRun("Chassis Power is unknown\n")).is_on()
    assert not isinstance(e.value, ConfigError)


@pytest.mark.parametrize("stderr", [
    "RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n",
    "RAKP 2 message indicates an error : unauthorized name\n"
    "Error: Unable to establish IPMI v2 / RMCP+ session\n",
    "Activate Session error: Invalid user name\n",
])
def test_ipmi_refused_credentials_are_config_errors(stderr):
    with pytest.raises(ConfigError) as e:
        ipmi(FakeRun(stderr=stderr, returncode=1)).is_on()
    text = str(e.value)
    assert "node2" in text
    assert "power.user and power.password_env" in e.value.hint
    assert "node2" in e.value.hint
    assert SECRET not in text


def test_ipmi_no_session_is_ambiguous_lab_error():
    run = FakeRun(stderr="Error: Unable to establish IPMI v2 / RMCP+ session\n", returncode=1)
    with pytest.raises(LabError) as e:
        ipmi(run).power_off()
    assert not isinstance(e.value, ConfigError)
    assert "the BMC did not accept a session: wrong user/password, or the BMC is unreachable" \
        in str(e.value)
    assert "node2" in str(e.value)
    assert "power.password_env" in e.value.hint and "reachable" in e.value.hint
    # the quick failure was asked about once more, verbosely, with a command that switches
    # nothing, the password again only in the environment
    (first, _), (second, kwargs) = run.calls
    assert first[-3:] == ["chassis", "power", "off"]
    assert second == ["ipmitool", "-v", "-I", "lanplus", "-H", "10.0.0.22", "-p", "623",
                      "-U", "admin", "-E", "chassis", "power", "status"]
    assert kwargs["env"]["IPMI_PASSWORD"] == SECRET


class AnswersRun(FakeRun):
    """subprocess.run answering each call with the next recorded (stdout, stderr, rc)."""

    def __init__(self, *answers):
        super().__init__()
        self.answers = list(answers)

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        stdout, stderr, returncode = self.answers.pop(0)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


# ipmitool 1.8.19 against virtualbmc 3.3 (tests/qemu/test_bmc_real.py), a wrong password:
# plain, then with -v (only -v names the refusal)
VBMC_WRONG_PASSWORD = ("", "Error: Unable to establish IPMI v2 / RMCP+ session\n", 1)
VBMC_WRONG_PASSWORD_VERBOSE = (
    "", "Loading IANA PEN Registry...\nUsing best available cipher suite 3\n\n"
        "> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n", 1)
# and an unknown user name: the BMC stays silent (14 s of retries)
VBMC_UNKNOWN_USER = (
    "", "> Error: no response from RAKP 1 message\n" * 4
        + "Set Session Privilege Level to ADMINISTRATOR failed\n"
          "Error: Unable to establish IPMI v2 / RMCP+ session\n", 1)


def test_ipmi_a_quickly_refused_session_asks_verbosely_and_names_the_password():
    run = AnswersRun(VBMC_WRONG_PASSWORD, VBMC_WRONG_PASSWORD_VERBOSE)
    with pytest.raises(ConfigError) as e:
        ipmi(run).reset()
    text = str(e.value)
    assert "node2: the BMC at 10.0.0.22 refused the user name or password" in text
    assert "(ipmitool -v: RAKP 2 HMAC is invalid)" in text
    assert e.value.hint == "check power.user and power.password_env in the inventory for node2"
    assert SECRET not in text
    assert [argv[-1] for argv, _ in run.calls] == ["reset", "status"]


def test_ipmi_a_slow_failed_session_is_not_asked_again():
    run = AnswersRun(VBMC_UNKNOWN_USER)
    driver = ipmi(run)
    driver.diagnose_within_s = 0  # as if the failure took its full retries
    with pytest.raises(LabError) as e:
        driver.is_on()
    assert not isinstance(e.value, ConfigError)
    assert "did not answer the session's first step" in str(e.value)
    assert len(run.calls) == 1


def test_ipmi_other_failure_quotes_output():
    run = FakeRun(stderr="Unable to set Chassis Power Control to Down/Off\n", returncode=1)
    with pytest.raises(LabError, match="exited with 1: Unable to set Chassis Power Control"):
        ipmi(run).power_off()


def test_ipmi_missing_ipmitool():
    with pytest.raises(LabError, match="node2.*not installed") as e:
        ipmi(FakeRun(raises=FileNotFoundError(2, "No such file", "ipmitool"))).is_on()
    assert e.value.hint == "apt-get install ipmitool"


def test_ipmi_timeout():
    run = FakeRun(raises=subprocess.TimeoutExpired(["ipmitool"], 20))
    with pytest.raises(LabError, match="node2: no answer within 20 s") as e:
        ipmi(run).is_on()
    assert "reachable" in e.value.hint


def test_ipmi_describe_has_no_password():
    driver = ipmi(FakeRun())
    assert driver.describe() == "IPMI lanplus 10.0.0.22 as admin"
    assert SECRET not in driver.describe()
    assert isinstance(driver, PowerDriver)


# ------------------------------------------------------------------------------- Redfish

IDRAC_SYSTEMS = {
    "@odata.context": "/redfish/v1/$metadata#ComputerSystemCollection.ComputerSystemCollection",
    "@odata.id": "/redfish/v1/Systems",
    "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
    "Description": "Collection of Computer Systems",
    "Members": [{"@odata.id": "/redfish/v1/Systems/System.Embedded.1"}],
    "Members@odata.count": 1,
    "Name": "Computer System Collection",
}
IDRAC_RESET = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"


def idrac_system(state="On", allowed=("On", "ForceOff", "GracefulShutdown", "ForceRestart")):
    reset = {"target": IDRAC_RESET}
    if allowed is not None:
        reset["ResetType@Redfish.AllowableValues"] = list(allowed)
    return {
        "@odata.id": "/redfish/v1/Systems/System.Embedded.1",
        "@odata.type": "#ComputerSystem.v1_12_0.ComputerSystem",
        "Id": "System.Embedded.1", "Manufacturer": "Dell Inc.", "Model": "PowerEdge R640",
        "PowerState": state,
        "Actions": {"#ComputerSystem.Reset": reset},
    }


# HPE iLO 5 ends its paths with a slash.
ILO_SYSTEMS = {
    "@odata.id": "/redfish/v1/Systems/",
    "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
    "Members": [{"@odata.id": "/redfish/v1/Systems/1/"}],
    "Members@odata.count": 1,
    "Name": "Computer Systems",
}
ILO_SYSTEM = {
    "@odata.id": "/redfish/v1/Systems/1/", "Id": "1", "Manufacturer": "HPE",
    "Model": "ProLiant DL360 Gen10", "PowerState": "Off",
    "Actions": {"#ComputerSystem.Reset": {
        "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown",
                                              "ForceRestart", "Nmi", "PushPowerButton"],
        "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset/"}},
}

MULTI_SYSTEMS = {
    "@odata.id": "/redfish/v1/Systems",
    "Members": [{"@odata.id": "/redfish/v1/Systems/Node1"},
                {"@odata.id": "/redfish/v1/Systems/Node2"}],
    "Members@odata.count": 2,
}

IDRAC_401 = {"error": {
    "@Message.ExtendedInfo": [{
        "Message": "Unable to complete the operation because an invalid username and/or "
                   "password is entered, and therefore authentication failed.",
        "MessageId": "IDRAC.2.8.SYS415", "Severity": "Warning"}],
    "code": "Base.1.12.GeneralError",
    "message": "A general error has occurred. See ExtendedInfo for more information"}}

INTERNAL_500 = {"error": {
    "code": "Base.1.8.InternalError",
    "message": "The request failed due to an internal service error.  "
               "The service is still operational."}}


class FakeTransport:
    """Answers (method, path) from a table and records every request."""

    def __init__(self, base, answers):
        self.base, self.answers, self.calls = base, answers, []

    def __call__(self, method, url, body):
        self.calls.append((method, url, body))
        assert url.startswith(self.base), url
        return self.answers[(method, url[len(self.base):])]


def idrac(answers=None, **kwargs):
    answers = answers or {("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
                          ("GET", "/redfish/v1/Systems/System.Embedded.1"):
                              (200, idrac_system()),
                          ("POST", IDRAC_RESET): (204, {})}
    transport = FakeTransport("https://10.0.0.31", answers)
    driver = RedfishPower("node1", "https://10.0.0.31", "root", SECRET,
                          transport=transport, **kwargs)
    return driver, transport


def test_redfish_one_member_is_used_and_cached():
    driver, transport = idrac()
    assert driver.system_path() == "/redfish/v1/Systems/System.Embedded.1"
    assert driver.is_on() is True
    driver.check()
    gets = [url for method, url, _ in transport.calls if url.endswith("/Systems")]
    assert gets == ["https://10.0.0.31/redfish/v1/Systems"]


def test_redfish_several_members_without_id_asks_for_power_system():
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, MULTI_SYSTEMS)})
    with pytest.raises(ConfigError, match="node1.*several systems: Node1, Node2") as e:
        driver.check()
    assert "power.system" in e.value.hint


def test_redfish_several_members_with_id():
    answers = {("GET", "/redfish/v1/Systems"): (200, MULTI_SYSTEMS),
               ("GET", "/redfish/v1/Systems/Node2"): (200, {"PowerState": "Off"})}
    driver, transport = idrac(answers, system_id="Node2")
    assert driver.is_on() is False
    assert transport.calls[-1][1] == "https://10.0.0.31/redfish/v1/Systems/Node2"


def test_redfish_id_not_found_lists_ids():
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, MULTI_SYSTEMS),
                       ("GET", "/redfish/v1/Systems/Node1"): (200, {"Name": "Node1"}),
                       ("GET", "/redfish/v1/Systems/Node2"): (404, {})}, system_id="Node3")
    with pytest.raises(ConfigError, match="'Node3' not found.*it has: Node1, Node2\n") as e:
        driver.check()
    assert "power.system" in e.value.hint


def test_redfish_id_matches_last_segment_only():
    systems = {"Members": [{"@odata.id": "/redfish/v1/Systems/11"}]}
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, systems),
                       ("GET", "/redfish/v1/Systems/11"): (200, {"Name": "System 11"})},
                      system_id="1")
    with pytest.raises(ConfigError, match=r"not found.*it has: 11 \(System 11\)"):
        driver.system_path()


# sushy-tools 2.2's emulator over libvirt (tests/qemu/test_bmc_real.py): systems listed by
# the domain's UUID, each named after its domain
SUSHY_SYSTEMS = {
    "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
    "Name": "Computer System Collection", "Members@odata.count": 2,
    "Members": [{"@odata.id": "/redfish/v1/Systems/60c95b40-dbc2-4c58-ad3f-b2417af14991"},
                {"@odata.id": "/redfish/v1/Systems/4706d533-443f-494b-a297-42dd4e2561b3"}],
    "@odata.id": "/redfish/v1/Systems"}
SUSHY_1 = "/redfish/v1/Systems/60c95b40-dbc2-4c58-ad3f-b2417af14991"
SUSHY_2 = "/redfish/v1/Systems/4706d533-443f-494b-a297-42dd4e2561b3"


def sushy_system(uuid, name, state="On"):
    return {"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem", "Id": uuid,
            "Name": name, "UUID": uuid, "Manufacturer": "Sushy Emulator", "PowerState": state,
            "Actions": {"#ComputerSystem.Reset": {
                "target": f"/redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": [
                    "On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart",
                    "Nmi", "ForceOn"]}},
            "@odata.id": f"/redfish/v1/Systems/{uuid}"}


SUSHY_ANSWERS = {
    ("GET", "/redfish/v1/Systems"): (200, SUSHY_SYSTEMS),
    ("GET", SUSHY_1): (200, sushy_system(SUSHY_1.rsplit("/", 1)[1], "pvechaos-bmcdev-1")),
    ("GET", SUSHY_2): (200, sushy_system(SUSHY_2.rsplit("/", 1)[1], "pvechaos-bmcdev-2",
                                         "Off")),
    ("POST", SUSHY_2 + "/Actions/ComputerSystem.Reset"): (204, {}),
}


def test_redfish_system_by_uuid_on_sushy():
    driver, transport = idrac(SUSHY_ANSWERS, system_id=SUSHY_2.rsplit("/", 1)[1])
    assert driver.is_on() is False
    assert [url for _, url, _ in transport.calls] == [
        "https://10.0.0.31/redfish/v1/Systems", "https://10.0.0.31" + SUSHY_2]


def test_redfish_system_by_name_when_no_id_matches():
    """sushy lists a domain by UUID: power.system may name the domain instead."""
    driver, transport = idrac(SUSHY_ANSWERS, system_id="pvechaos-bmcdev-2")
    assert driver.system_path() == SUSHY_2
    driver.power_on()
    assert transport.calls[-1] == ("POST", "https://10.0.0.31" + SUSHY_2
                                   + "/Actions/ComputerSystem.Reset", {"ResetType": "On"})


def test_redfish_system_name_not_found_lists_ids_and_names():
    driver, _ = idrac(SUSHY_ANSWERS, system_id="pvechaos-bmcdev-9")
    with pytest.raises(ConfigError) as e:
        driver.check()
    assert ("'pvechaos-bmcdev-9' not found at https://10.0.0.31; it has: "
            "60c95b40-dbc2-4c58-ad3f-b2417af14991 (pvechaos-bmcdev-1), "
            "4706d533-443f-494b-a297-42dd4e2561b3 (pvechaos-bmcdev-2)") in str(e.value)


def test_redfish_a_name_that_two_systems_share_is_refused():
    answers = dict(SUSHY_ANSWERS)
    answers[("GET", SUSHY_1)] = (200, sushy_system("x", "twin"))
    answers[("GET", SUSHY_2)] = (200, sushy_system("y", "twin"))
    driver, _ = idrac(answers, system_id="twin")
    with pytest.raises(ConfigError, match="'twin' names 2 systems"):
        driver.check()


@pytest.mark.parametrize(("state", "on"), [
    ("On", True), ("Off", False), ("PoweringOn", True), ("PoweringOff", False)])
def test_redfish_power_state(state, on):
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
                       ("GET", "/redfish/v1/Systems/System.Embedded.1"):
                           (200, idrac_system(state))})
    assert driver.is_on() is on


def test_redfish_unknown_power_state():
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
                       ("GET", "/redfish/v1/Systems/System.Embedded.1"): (200, {"Id": "x"})})
    with pytest.raises(LabError, match="node1: unexpected PowerState None"):
        driver.is_on()


@pytest.mark.parametrize(("method", "reset_type"), [("power_off", "ForceOff"),
                                                     ("power_on", "On"),
                                                     ("shutdown", "GracefulShutdown"),
                                                     ("reset", "ForceRestart")])
def test_redfish_reset_posts_to_the_action_target(method, reset_type):
    driver, transport = idrac()
    getattr(driver, method)()
    assert transport.calls[-1] == ("POST", "https://10.0.0.31" + IDRAC_RESET,
                                   {"ResetType": reset_type})


def test_redfish_ilo_trailing_slashes_and_202():
    answers = {("GET", "/redfish/v1/Systems"): (200, ILO_SYSTEMS),
               ("GET", "/redfish/v1/Systems/1"): (200, ILO_SYSTEM),
               ("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset/"): (202, {})}
    transport = FakeTransport("https://ilo-node4.example", answers)
    driver = RedfishPower("node4", "https://ilo-node4.example/", "Administrator", SECRET,
                          transport=transport)
    assert driver.is_on() is False
    driver.power_on()
    assert transport.calls[-1][0] == "POST"
    assert transport.calls[-1][2] == {"ResetType": "On"}


def test_redfish_without_target_uses_the_standard_path():
    system = {"PowerState": "On", "Actions": {"#ComputerSystem.Reset": {}}}
    answers = {("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
               ("GET", "/redfish/v1/Systems/System.Embedded.1"): (200, system),
               ("POST", IDRAC_RESET): (200, {})}
    driver, transport = idrac(answers)
    driver.power_off()
    assert transport.calls[-1] == ("POST", "https://10.0.0.31" + IDRAC_RESET,
                                   {"ResetType": "ForceOff"})


def test_redfish_allowable_values_refusal_posts_nothing():
    answers = {("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
               ("GET", "/redfish/v1/Systems/System.Embedded.1"):
                   (200, idrac_system(allowed=["On", "GracefulShutdown"]))}
    driver, transport = idrac(answers)
    with pytest.raises(LabError, match="'ForceOff'; it allows: On, GracefulShutdown"):
        driver.power_off()
    assert not any(method == "POST" for method, _, _ in transport.calls)


@pytest.mark.parametrize("status", [401, 403])
def test_redfish_refused_credentials(status):
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (status, IDRAC_401)})
    with pytest.raises(ConfigError, match=f"node1.*HTTP {status}.*invalid username") as e:
        driver.check()
    assert "power.user" in e.value.hint and "power.password_env" in e.value.hint
    assert SECRET not in str(e.value)


def test_redfish_500_quotes_the_error_message():
    answers = {("GET", "/redfish/v1/Systems"): (200, IDRAC_SYSTEMS),
               ("GET", "/redfish/v1/Systems/System.Embedded.1"): (200, idrac_system()),
               ("POST", IDRAC_RESET): (500, INTERNAL_500)}
    driver, _ = idrac(answers)
    with pytest.raises(LabError, match="HTTP 500: The request failed due to an internal") as e:
        driver.power_off()
    assert not isinstance(e.value, ConfigError)


def test_redfish_404_is_a_lab_error():
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (404, {})})
    with pytest.raises(LabError, match="HTTP 404") as e:
        driver.check()
    assert not isinstance(e.value, ConfigError)


def test_redfish_empty_systems_collection():
    driver, _ = idrac({("GET", "/redfish/v1/Systems"): (200, {"Members": []})})
    with pytest.raises(LabError, match="lists no systems"):
        driver.check()


@pytest.mark.parametrize("url", [
    "10.0.0.31", "ftp://10.0.0.31", "https://", "https://10.0.0.31/redfish/v1",
    "https://10.0.0.31/?x=1", "https://10.0.0.31:notaport", "",
])
def test_redfish_bad_base_url(url):
    with pytest.raises(ConfigError, match="node1: power.url") as e:
        RedfishPower("node1", url, "root", SECRET, transport=lambda *a: (200, {}))
    assert "power.url" in e.value.hint


def test_redfish_base_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ConfigError, match="power.url must not contain credentials") as e:
        RedfishPower("node1", f"https://root:{SECRET}@10.0.0.31", "root", SECRET,
                     transport=lambda *a: (200, {}))
    assert SECRET not in str(e.value)


def test_redfish_describe_has_no_password():
    driver, _ = idrac(system_id="System.Embedded.1", verify_tls=False)
    text = driver.describe()
    assert SECRET not in text
    assert text == "Redfish https://10.0.0.31 system System.Embedded.1 as root (TLS not verified)"
    assert isinstance(driver, PowerDriver)


# --------------------------------------------------- the default transport, urlopen faked

class FakeResponse(io.BytesIO):
    def __init__(self, status, raw):
        super().__init__(raw)
        self.status = status


@pytest.fixture
def urlopen(monkeypatch):
    seen = {}

    def install(answer):
        def fake(request, timeout, context):
            seen.update(request=request, timeout=timeout, context=context)
            if isinstance(answer, Exception):
                raise answer
            return answer
        monkeypatch.setattr(power_drivers.urllib.request, "urlopen", fake)
        return seen
    return install


def test_default_transport_sends_basic_auth_and_json(urlopen):
    seen = urlopen(FakeResponse(204, b""))
    transport = power_drivers.urllib_transport("node1", "root", SECRET, timeout_s=7)
    assert transport("POST", "https://10.0.0.31" + IDRAC_RESET, {"ResetType": "On"}) == (204, {})
    request = seen["request"]
    assert request.get_method() == "POST"
    assert json.loads(request.data) == {"ResetType": "On"}
    assert request.get_header("Content-type") == "application/json"
    assert request.get_header("Authorization") == \
        "Basic " + base64.b64encode(f"root:{SECRET}".encode()).decode()
    assert seen["timeout"] == 7
    assert seen["context"].verify_mode == ssl.CERT_REQUIRED


def test_default_transport_skips_verification_only_when_asked(urlopen):
    seen = urlopen(FakeResponse(200, json.dumps(IDRAC_SYSTEMS).encode()))
    transport = power_drivers.urllib_transport("node1", "root", SECRET, verify_tls=False)
    assert transport("GET", "https://10.0.0.31/redfish/v1/Systems", None) == (200, IDRAC_SYSTEMS)
    assert seen["context"].verify_mode == ssl.CERT_NONE
    assert seen["context"].check_hostname is False


def test_default_transport_turns_http_error_into_status(urlopen):
    url = "https://10.0.0.31/redfish/v1/Systems"
    urlopen(urllib.error.HTTPError(url, 401, "Unauthorized", {},
                                   io.BytesIO(json.dumps(IDRAC_401).encode())))
    transport = power_drivers.urllib_transport("node1", "root", SECRET)
    assert transport("GET", url, None) == (401, IDRAC_401)


def test_default_transport_http_error_with_html_body(urlopen):
    url = "https://10.0.0.31/redfish/v1/Systems"
    urlopen(urllib.error.HTTPError(url, 503, "Busy", {}, io.BytesIO(b"<html>busy</html>")))
    transport = power_drivers.urllib_transport("node1", "root", SECRET)
    assert transport("GET", url, None) == (503, {})


def test_default_transport_untrusted_certificate_is_a_config_error(urlopen):
    # what urllib raises against sushy-tools' emulator with a self-signed certificate
    failure = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                              "verify failed: self-signed certificate")
    failure.verify_message = "self-signed certificate"
    urlopen(urllib.error.URLError(failure))
    transport = power_drivers.urllib_transport("node1", "root", SECRET)
    url = "https://10.0.0.31/redfish/v1/Systems"
    with pytest.raises(ConfigError) as e:
        transport("GET", url, None)
    assert str(e.value).startswith(f"node1: the Redfish service at {url} has a certificate "
                                   "this machine does not trust: self-signed certificate")
    assert "power.verify_tls: false for node1" in e.value.hint
    assert "SSL_CERT_FILE" in e.value.hint


@pytest.mark.parametrize(("error", "reason"), [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     "Connection refused"),
    (TimeoutError("timed out"), "no answer within 20 s"),
    (OSError(113, "No route to host"), "No route to host"),
])
def test_default_transport_unreachable_is_a_lab_error(urlopen, error, reason):
    urlopen(error)
    transport = power_drivers.urllib_transport("node1", "root", SECRET)
    url = "https://10.0.0.31/redfish/v1/Systems"
    with pytest.raises(LabError, match=f"node1: cannot reach the Redfish service at {url}: "
                                       f".*{reason}") as e:
        transport("GET", url, None)
    assert "reachable" in e.value.hint

"""Every lab and the test twin implement every verb of the Lab protocol, with its
parameters; a verb a lab has no Capability for is refused with the error that names it,
and a verb that is not in the protocol does not exist."""

from __future__ import annotations

import inspect

import pytest

from harness.errors import UnsupportedFault
from harness.lab_api import VERB_CAPABILITY, Capability, Lab, RefusesWhatItLacks
from lab.embedded import EmbeddedConfig, EmbeddedLab
from lab.inventory.lab import InventoryLab
from lab.libvirt.lab import LibvirtLab
from tests.twins import FakeLab

VERBS = sorted(name for name, member in vars(Lab).items()
               if inspect.isfunction(member) and not name.startswith("_"))
REAL_LABS = [EmbeddedLab, LibvirtLab, InventoryLab]
LABS = [*REAL_LABS, FakeLab]
OPTIONAL = VERB_CAPABILITY  # the optional verbs and the capability each needs


def call(lab: object, verb: str) -> None:
    """The verb as the protocol declares it: with a node, a sink, or nothing."""
    takes = list(inspect.signature(vars(Lab)[verb]).parameters)[1:]
    getattr(lab, verb)(*["node1"] * len(takes))


def test_the_protocol_has_every_fault_verb():
    assert {"power_cut", "power_on", "is_powered", "shutdown", "reset", "freeze", "thaw",
            "link_down", "link_up", "save_ready", "subscribe"} <= set(VERBS)
    assert set(OPTIONAL) <= set(VERBS)


@pytest.mark.parametrize("verb", sorted(OPTIONAL))
@pytest.mark.parametrize("lab_class", REAL_LABS, ids=lambda c: c.__name__)
def test_a_lab_implements_the_verbs_it_declares_and_refuses_the_others(lab_class, verb):
    refusal = vars(RefusesWhatItLacks)[verb]
    implementation = inspect.getattr_static(lab_class, verb)
    if OPTIONAL[verb] in lab_class.capabilities:
        assert implementation is not refusal, \
            f"{lab_class.__name__} declares {OPTIONAL[verb].name} but refuses {verb}()"
    else:
        assert implementation is refusal, \
            f"{lab_class.__name__} lacks {OPTIONAL[verb].name} but has its own {verb}()"


@pytest.mark.parametrize("verb", sorted(OPTIONAL))
def test_the_refusal_names_the_verb_and_its_capability(verb):
    class Bare(RefusesWhatItLacks):
        kind = "bare"

    with pytest.raises(UnsupportedFault, match=f"(?s)bare lab cannot "
                                               f"{verb.replace('_', ' ')}.*{OPTIONAL[verb].name}"):
        call(Bare(), verb)


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_every_lab_implements_the_verb_with_the_protocols_parameters(lab_class, verb):
    implementation = inspect.getattr_static(lab_class, verb, None)
    assert inspect.isfunction(implementation), f"{lab_class.__name__} has no {verb}()"
    wanted = list(inspect.signature(vars(Lab)[verb]).parameters)
    assert list(inspect.signature(implementation).parameters) == wanted


@pytest.mark.parametrize("lab_class", REAL_LABS, ids=lambda c: c.__name__)
def test_every_lab_says_what_it_can(lab_class):
    assert isinstance(lab_class.kind, str) and isinstance(lab_class.capabilities, Capability)
    assert Capability.POWER in lab_class.capabilities


@pytest.mark.parametrize("verb", sorted(v for v, c in OPTIONAL.items()
                                        if c not in EmbeddedLab.capabilities))
def test_the_embedded_lab_refuses_a_verb_it_has_no_capability_for(verb):
    lab = EmbeddedLab(EmbeddedConfig(name="proto"))
    with pytest.raises(UnsupportedFault, match=f"(?s)embedded lab cannot "
                                               f"{verb.replace('_', ' ')}.*{OPTIONAL[verb].name}"):
        call(lab, verb)


@pytest.mark.parametrize("verb", sorted(OPTIONAL))
def test_the_twin_refuses_what_its_capabilities_lack(verb):
    lab = FakeLab(Capability.POWER)
    with pytest.raises(UnsupportedFault, match=OPTIONAL[verb].name):
        call(lab, verb)
    assert lab.calls == []


def test_the_twin_refuses_a_misspelt_verb():
    lab = FakeLab(Capability.POWER | Capability.FREEZE)
    with pytest.raises(AttributeError):
        lab.froze("node1")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        lab.power_off("node1")  # type: ignore[attr-defined]
    assert lab.calls == []

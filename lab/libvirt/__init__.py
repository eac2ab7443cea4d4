"""The libvirt lab: nested PVE VMs on KVM runners."""

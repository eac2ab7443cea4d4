"""The qemu test bed: real libvirt domains and real BMCs serving them."""

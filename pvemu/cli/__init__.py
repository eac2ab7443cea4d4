"""Emulated PVE commands, installed on every embedded node's PATH."""

"""The emulated PVE node stack that runs inside embedded nodes.

Only the standard library (and mfusepy for pmxcfs) may be imported here: these modules
run as short-lived node commands and must start fast.
"""
